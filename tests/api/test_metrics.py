"""Prometheus metrics: config-ops §8, plus the extra families of authd."""

import re
import threading
import time

import httpx
import pytest

from harness import PROD_ENV

REQ = "auth_service_http_requests_total"
DUR = "auth_service_http_request_duration_seconds"
LAT = "auth_service_http_request_latency_seconds"
INFLIGHT = "auth_service_http_requests_in_flight"
POOL = "auth_service_db_pool_connections"

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


class Metrics:
    def __init__(self, text: str):
        self.text = text
        self.help: dict[str, str] = {}
        self.type: dict[str, str] = {}
        self.samples: list[tuple[str, tuple[tuple[str, str], ...], float]] = []
        self.bad_lines: list[str] = []
        for line in text.split("\n"):
            if not line:
                continue
            if line.startswith("# HELP "):
                name, _, doc = line[7:].partition(" ")
                self.help[name] = doc
            elif line.startswith("# TYPE "):
                name, _, typ = line[7:].partition(" ")
                self.type[name] = typ
            elif line.startswith("#"):
                continue
            else:
                m = SAMPLE_RE.match(line)
                if not m:
                    self.bad_lines.append(line)
                    continue
                labels = []
                rest = m.group(2) or ""
                pos = 0
                while pos < len(rest):
                    lm = LABEL_RE.match(rest, pos)
                    if not lm:
                        self.bad_lines.append(line)
                        break
                    labels.append((lm.group(1), lm.group(2)))
                    pos = lm.end()
                self.samples.append((m.group(1), tuple(labels), float(m.group(3))))

    def series(self, name):
        return [(labels, v) for n, labels, v in self.samples if n == name]

    def value(self, name, **labels):
        want = set(labels.items())
        vals = [v for n, ls, v in self.samples if n == name and set(ls) == want]
        return vals[0] if vals else 0.0


def scrape(inst) -> Metrics:
    r = inst.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    return Metrics(r.text)


def test_content_type_and_shape(server):
    r = server.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert r.text.endswith("\n")
    m = Metrics(r.text)
    assert m.bad_lines == []
    assert m.help[REQ] == "Total HTTP requests seen by the service."
    assert m.type[REQ] == "counter"
    assert m.help[DUR] == "End-to-end HTTP request duration in seconds."
    assert m.type[DUR] == "summary"
    assert m.type.get(LAT) == "histogram"
    assert m.type.get(INFLIGHT) == "gauge"
    assert m.type.get(POOL) == "gauge"


def test_help_and_type_precede_samples(server):
    server.get("/health/live")
    text = server.get("/metrics").text
    lines = text.split("\n")
    for fam in (REQ, DUR):
        help_i = lines.index(next(l for l in lines if l.startswith(f"# HELP {fam} ")))
        type_i = lines.index(f"# TYPE {fam} {'counter' if fam == REQ else 'summary'}")
        assert type_i == help_i + 1
        first_sample = next(i for i, l in enumerate(lines) if l.startswith(fam + "{")
                            or l.startswith(fam + "_count{"))
        assert first_sample > type_i


def test_summary_has_only_count_and_sum(server):
    server.get("/health/live")
    m = scrape(server)
    names = {n for n, _, _ in m.samples if n.startswith(DUR)}
    assert names == {DUR + "_count", DUR + "_sum"}
    assert not [ls for n, ls, _ in m.samples if n.startswith(DUR) and "quantile" in dict(ls)]


def test_counts_per_route_method_status(server):
    before = scrape(server)
    for _ in range(3):
        server.get("/health/live")
    for _ in range(2):
        server.get("/health/ready")
    server.post("/health/live")                      # 405
    server.post("/_test/echo", content=b"[]")         # 422
    after = scrape(server)

    def delta(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta(REQ, method="GET", path="/health/live", status="200") == 3
    assert delta(REQ, method="GET", path="/health/ready", status="200") == 2
    # a 405 may be labelled with the route template or as unmatched
    assert (delta(REQ, method="POST", path="/health/live", status="405")
            + delta(REQ, method="POST", path="__unmatched__", status="405")) == 1
    assert delta(REQ, method="POST", path="/_test/echo", status="422") == 1
    assert delta(DUR + "_count", method="GET", path="/health/live", status="200") == 3
    assert delta(DUR + "_sum", method="GET", path="/health/live", status="200") >= 0


def test_unmatched_paths_share_one_label(server):
    before = scrape(server)
    server.get("/nope-one-a1b2c3")
    server.get("/nope-two-d4e5f6")
    server.get("/health/live/")
    after = scrape(server)
    assert (after.value(REQ, method="GET", path="__unmatched__", status="404")
            - before.value(REQ, method="GET", path="__unmatched__", status="404")) == 3
    assert "a1b2c3" not in after.text and "d4e5f6" not in after.text
    assert 'path="/health/live/"' not in after.text


def test_route_templates_not_raw_paths(server):
    server.get("/_test/sleep?ms=1")
    server.get("/health/live?secret=abc123xyz")
    m = scrape(server)
    assert m.value(REQ, method="GET", path="/_test/sleep", status="200") >= 1
    assert "abc123xyz" not in m.text
    assert "ms=1" not in m.text


def test_metrics_counts_itself(server):
    scrape(server)
    m = scrape(server)
    assert m.value(REQ, method="GET", path="/metrics", status="200") >= 1


def test_errors_of_every_stage_are_counted(authd):
    inst = authd({"APP__ALLOWED_HOSTS": '["127.0.0.1"]'})
    before = scrape(inst)
    inst.get("/health/live", headers={"Host": "evil.example.com"})                  # 400
    inst.post("/_test/echo", content=b"{" + b" " * 70000 + b"}")                     # 413
    inst.get("/health/live", headers={"X-Big": "b" * 20000})                         # 431
    after = scrape(inst)

    def total(m, status):
        return sum(v for ls, v in m.series(REQ) if dict(ls).get("status") == status)

    for status in ("400", "413", "431"):
        assert total(after, status) - total(before, status) == 1, status


def test_labels_order_and_sorting(server):
    for p in ("/health/live", "/nope", "/health/ready", "/metrics"):
        server.get(p)
    server.post("/health/live")
    server.request("DELETE", "/health/ready")
    m = scrape(server)
    for fam in (REQ, DUR + "_count", DUR + "_sum"):
        keys = []
        for labels, v in m.series(fam):
            assert [k for k, _ in labels] == ["method", "path", "status"], labels
            assert v >= 0
            keys.append(tuple(val for _, val in labels))
        assert len(keys) >= 5, fam
        assert keys == sorted(keys), f"{fam} not sorted: {keys}"
        assert len(set(keys)) == len(keys)


def test_summary_count_matches_counter(server):
    for _ in range(4):
        server.get("/health/live")
    server.get("/nope")
    m = scrape(server)
    counts = {ls: v for ls, v in m.series(REQ)}
    durs = {ls: v for ls, v in m.series(DUR + "_count")}
    # /metrics may be counted between the two families of one scrape; everything else matches
    for ls, v in counts.items():
        if dict(ls)["path"] == "/metrics":
            continue
        assert durs.get(ls) == v, ls


def test_duration_sum_reflects_slow_requests(server):
    server.get("/_test/sleep?ms=400")
    m = scrape(server)
    s = m.value(DUR + "_sum", method="GET", path="/_test/sleep", status="200")
    assert 0.39 <= s < 30


def test_latency_histogram(server):
    server.get("/_test/sleep?ms=200")
    for _ in range(3):
        server.get("/health/live")
    m = scrape(server)
    buckets = [(dict(ls), v) for ls, v in m.series(LAT + "_bucket")]
    assert buckets, "no histogram buckets"
    series = {}
    for ls, v in buckets:
        key = tuple(sorted((k, x) for k, x in ls.items() if k != "le"))
        series.setdefault(key, []).append((ls["le"], v))
    for key, bs in series.items():
        les = [float("inf") if le == "+Inf" else float(le) for le, _ in bs]
        assert les == sorted(les), key
        assert les[-1] == float("inf"), key
        vals = [v for _, v in bs]
        assert vals == sorted(vals), f"buckets not cumulative for {key}"
        labels = dict(key)
        assert m.value(LAT + "_count", **labels) == vals[-1], key
    sleep_key = next(k for k in series if dict(k).get("path") == "/_test/sleep")
    bs = series[sleep_key]
    below = [v for le, v in bs if le != "+Inf" and float(le) < 0.2]
    assert all(v == 0 for v in below), "a 200 ms request landed in a bucket below 0.2 s"


def test_in_flight_gauge_sees_parked_request(server):
    idle = scrape(server).value(INFLIGHT)
    result = {}

    def slow():
        result["r"] = httpx.get(server.base_url + "/_test/sleep?ms=1500", timeout=20)
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    time.sleep(0.5)
    busy = scrape(server).value(INFLIGHT)
    t.join(20)
    assert result["r"].status_code == 200
    after = scrape(server).value(INFLIGHT)
    assert busy - idle >= 1, (idle, busy)
    assert busy - after >= 1, (busy, after)
    assert after >= 0


def test_db_pool_gauge(server):
    server.get("/health/ready")
    m = scrape(server)
    in_use = [v for ls, v in m.series(POOL) if dict(ls) == {"state": "in_use"}]
    idle = [v for ls, v in m.series(POOL) if dict(ls) == {"state": "idle"}]
    assert len(in_use) == 1 and len(idle) == 1, m.series(POOL)
    assert in_use[0] >= 0 and idle[0] >= 0
    assert in_use[0] + idle[0] >= 1, "readiness used the database but the pool shows no connection"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_metrics_protected_outside_development(authd, env):
    overrides = {"APP__ENVIRONMENT": env}
    if env == "production":
        overrides.update(PROD_ENV)
    inst = authd(overrides)
    r = inst.get("/metrics")
    assert r.status_code in (401, 403), r.status_code
    body = r.json()
    assert set(body) == {"detail", "code"}
    assert auth_code_ok(body["code"])
    assert "auth_service_http_requests_total" not in r.text
    r = inst.get("/metrics", headers={"Authorization": "Bearer garbage.token.here",
                                      "X-Admin-API-Key": "guess"})
    assert r.status_code in (401, 403)


def auth_code_ok(code):
    return code in ("invalid_token", "insufficient_role", "token_expired", "session_expired",
                    "invalid_credentials")

