"""Health endpoints: api-core §2, config-ops §10."""

import time

import pytest

from harness import PgCluster, RedisServer, wait_until

NOT_READY = {"detail": "Service not ready.", "code": "service_unavailable"}


def test_live(server):
    r = server.get("/health/live")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"status": "live"}


def test_ready(server):
    r = server.get("/health/ready")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"status": "ready"}


def test_live_ignores_query_string(server):
    r = server.get("/health/live?probe=1&x=")
    assert r.status_code == 200
    assert r.json() == {"status": "live"}


def test_health_needs_no_credentials_and_ignores_garbage_auth(server):
    r = server.get("/health/ready", headers={"Authorization": "Bearer not-a-jwt",
                                             "Cookie": "__Host-auth_access=garbage"})
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


def _poll_ready(inst, want_status, timeout):
    def check():
        r = inst.get("/health/ready")
        return r if r.status_code == want_status else None
    return wait_until(check, timeout, interval=0.2)


def test_ready_follows_redis_down_and_back(authd):
    """A dedicated redis-server: stopped → 503, started again → 200, same authd."""
    redis = RedisServer().start()
    try:
        inst = authd({"REDIS__URL": redis.url})
        assert inst.get("/health/ready").json() == {"status": "ready"}

        redis.stop()
        r = _poll_ready(inst, 503, timeout=15)
        assert r is not None, "readiness stayed 200 with Redis stopped"
        assert r.json() == NOT_READY
        assert r.headers["content-type"].startswith("application/json")
        # liveness does not depend on backends
        live = inst.get("/health/live")
        assert live.status_code == 200 and live.json() == {"status": "live"}

        redis.start()
        r = _poll_ready(inst, 200, timeout=30)
        assert r is not None, "readiness did not recover after Redis came back"
        assert r.json() == {"status": "ready"}
        assert inst.alive()
    finally:
        redis.destroy()


@pytest.mark.postgres_only
def test_ready_follows_postgres_down_and_back(authd):
    """A dedicated PostgreSQL cluster: stopped → 503, restarted → 200, same authd."""
    pg = PgCluster().start()
    try:
        db = pg.create_database()
        inst = authd({"DATABASE__URL": pg.url(db)})
        assert inst.get("/health/ready").json() == {"status": "ready"}

        pg.stop()
        t0 = time.monotonic()
        r = _poll_ready(inst, 503, timeout=30)
        assert r is not None, "readiness stayed 200 with PostgreSQL stopped"
        assert r.json() == NOT_READY
        # the 503 must come in bounded time, not after a long hang
        assert time.monotonic() - t0 < 30
        assert inst.get("/health/live").status_code == 200

        pg.start()
        r = _poll_ready(inst, 200, timeout=60)
        assert r is not None, "readiness did not recover after PostgreSQL came back"
        assert r.json() == {"status": "ready"}
        assert inst.alive()
    finally:
        pg.destroy()
