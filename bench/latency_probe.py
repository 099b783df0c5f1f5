"""Latency probe for the login bench: while the hashing pool is saturated,
GET /health/live and GET /auth/validate (bearer token) alternately, one
request every 10 ms on one keep-alive connection each, for the given
seconds; prints p50/p99/max per path in ms. A paced probe, so it measures
what a load balancer or a downstream service would see, not a second load
generator's own queueing.

    latency_probe.py BASE_URL ACCESS_TOKEN SECONDS
"""
import sys
import time

import httpx


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    base, token, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    paths = [("/health/live", {}, 200),
             ("/auth/validate", {"Authorization": f"Bearer {token}"}, 204)]
    lat = {p: [] for p, _, _ in paths}
    bad = 0
    with httpx.Client(base_url=base, timeout=10) as c:
        end = time.monotonic() + seconds
        nxt = time.monotonic()
        while time.monotonic() < end:
            for path, headers, want in paths:
                t0 = time.perf_counter()
                r = c.get(path, headers=headers)
                lat[path].append((time.perf_counter() - t0) * 1000)
                bad += r.status_code != want
            nxt += 0.010
            time.sleep(max(0.0, nxt - time.monotonic()))
    for path, xs in lat.items():
        print(f"{path}: n={len(xs)} p50={pct(xs, 50):.2f} ms p99={pct(xs, 99):.2f} ms "
              f"max={max(xs):.2f} ms")
    print(f"unexpected statuses: {bad}")


if __name__ == "__main__":
    main()
