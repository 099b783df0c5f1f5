"""Starts a private PostgreSQL cluster (PostgreSQL's default, durable commit
settings) and a redis-server for bench/run with BENCH_BACKEND=postgres,
using the test harness's helpers. Prints one line
`READY <database url> <redis url>` and keeps both running until stdin closes
or SIGTERM; then stops and removes them.

    pg_redis.py
"""
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "api"))
from harness import PgCluster, RedisServer  # noqa: E402


def main():
    pg = PgCluster()
    pg.start(durable=True)
    db = pg.create_database("authd_bench")
    redis = RedisServer().start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print(f"READY {pg.url(db)} {redis.url}", flush=True)
    try:
        done.wait()
    finally:
        redis.proc and redis.proc.terminate()
        pg.destroy()


if __name__ == "__main__":
    main()
