"""Request rate limiting: api-core §0.3 (stage 3), §11, spec R2, config-ops §2.6, §7.2.

Every request of a test comes from 127.0.0.1, so one client's bucket is
`rate_limit:<path>:ip:127.0.0.1` unless X-Forwarded-For (trusted proxy), a
verified token, a client id on /auth/token or the bootstrap admin key says
otherwise. Limits are set low per instance; nothing here waits out a 60 s
window: the sliding log is checked through Retry-After values, through two
instances with different limits on one Redis, and in the unit tests with a
simulated clock.
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness import RedisServer, new_cid

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains; preload",
    "Content-Security-Policy":
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}
LIMITED = {"detail": "Rate limit exceeded.", "code": "rate_limited"}
UNAVAILABLE = {"detail": "Rate limit backend unavailable.", "code": "rate_limit_unavailable"}
FORM = "application/x-www-form-urlencoded"


def limits(default=None, **kw) -> dict:
    env = {}
    if default is not None:
        env["RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE"] = str(default)
    for name, value in kw.items():
        env[f"RATE_LIMIT__{name.upper()}_REQUESTS_PER_MINUTE"] = str(value)
    return env


def retry_after(r: httpx.Response) -> int:
    v = r.headers.get("Retry-After")
    assert v is not None and v.isdigit(), f"Retry-After {v!r}"
    n = int(v)
    assert 1 <= n <= 60, n
    return n


def assert_limited(r: httpx.Response, cid: str | None = None, no_store: bool = False) -> int:
    assert r.status_code == 429, (r.status_code, r.text[:200])
    assert r.json() == LIMITED
    assert r.headers["content-type"].startswith("application/json")
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get_list(name) == [value], name
    if cid is not None:
        assert r.headers.get("X-Correlation-ID") == cid
    else:
        assert r.headers.get("X-Correlation-ID")
    if no_store:
        assert r.headers.get("Cache-Control") == "no-store"
        assert r.headers.get("Pragma") == "no-cache"
    else:
        assert "cache-control" not in r.headers and "pragma" not in r.headers
    assert not [h for h in r.headers if h.lower().startswith("x-ratelimit")]
    return retry_after(r)


def spend(inst, n: int, method: str, path: str, **kw) -> list[httpx.Response]:
    """n requests that must all get past the limiter."""
    out = []
    for i in range(n):
        r = inst.request(method, path, **kw)
        assert r.status_code != 429, f"request {i + 1} of {n} to {path} limited"
        assert r.status_code != 503, r.text
        out.append(r)
    return out


# --------------------------------------------------------------------------- the limit itself


@pytest.mark.parametrize("method,path,kw,status", [
    ("POST", "/_test/echo", {"json": {"a": 1}}, 200),
    ("GET", "/rl/unknown/path", {}, 404),           # 429 comes before routing
    ("DELETE", "/health/live/", {}, 404),           # not an exempt path
    ("OPTIONS", "/_test/echo", {}, 405),
])
def test_sixth_request_is_limited(authd, method, path, kw, status):
    inst = authd(limits(default=5))
    for r in spend(inst, 5, method, path, **kw):
        assert r.status_code == status
    cid = new_cid("rl")
    r = inst.request(method, path, headers={"X-Correlation-ID": cid}, **kw)
    assert_limited(r, cid)
    log = inst.request_log(cid)
    assert log["status_code"] == 429 and log["path"] == path


@pytest.mark.parametrize("path,limit_name", [
    ("/auth/login", "login"),
    ("/auth/token", "token"),
    ("/auth/apikeys", None),
    ("/auth/otp/verify/login", None),
])
def test_429_on_no_store_paths_carries_cache_headers(authd, path, limit_name):
    env = limits(default=2) if limit_name is None else limits(default=1000, **{limit_name: 2})
    inst = authd(env)
    spend(inst, 2, "POST", path, json={})
    assert_limited(inst.post(path, json={}), no_store=True)


def test_login_and_token_have_their_own_limits(authd):
    inst = authd(limits(default=2, login=4, token=3))
    spend(inst, 4, "POST", "/auth/login", json={})
    assert_limited(inst.post("/auth/login", json={}), no_store=True)
    spend(inst, 3, "POST", "/auth/token", json={})
    assert_limited(inst.post("/auth/token", json={}), no_store=True)
    spend(inst, 2, "GET", "/auth/sessions")
    assert_limited(inst.get("/auth/sessions"))


def test_login_default_limit_is_ten(authd):
    inst = authd({"RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE": "1000"})
    spend(inst, 10, "POST", "/auth/login", json={})
    assert_limited(inst.post("/auth/login", json={}), no_store=True)


def test_paths_are_separate_buckets(authd):
    inst = authd(limits(default=3))
    spend(inst, 3, "GET", "/rl/a")
    assert_limited(inst.get("/rl/a"))
    # The raw path is the bucket (not a route template); the query is not
    # part of the path; method does not matter.
    assert_limited(inst.get("/rl/a?x=1"))
    assert_limited(inst.post("/rl/a"))
    spend(inst, 3, "GET", "/rl/b")
    spend(inst, 3, "GET", "/rl/a/")
    spend(inst, 3, "GET", "/auth/sessions/11111111-1111-4111-8111-111111111111")
    spend(inst, 3, "GET", "/auth/sessions/22222222-2222-4222-8222-222222222222")
    assert_limited(inst.get("/auth/sessions/22222222-2222-4222-8222-222222222222"))


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics"])
def test_health_and_metrics_are_never_limited(authd, path):
    inst = authd(limits(default=1, service=1))
    for _ in range(25):
        assert inst.get(path).status_code == 200


@pytest.mark.parametrize("method,path", [
    ("GET", "/auth/validate"), ("POST", "/auth/introspect"), ("GET", "/.well-known/jwks.json"),
])
def test_service_endpoints_unlimited_by_default(authd, method, path):
    inst = authd(limits(default=1))
    spend(inst, 25, method, path)


@pytest.mark.parametrize("method,path", [
    ("GET", "/auth/validate"), ("POST", "/auth/introspect"), ("GET", "/.well-known/jwks.json"),
])
def test_service_limit_when_configured(authd, method, path):
    inst = authd(limits(default=1000, service=3))
    spend(inst, 3, method, path)
    assert_limited(inst.request(method, path))
    # Keyed like the default bucket: per path.
    other = "/auth/validate" if path != "/auth/validate" else "/auth/introspect"
    spend(inst, 3, "POST" if other == "/auth/introspect" else "GET", other)


# --------------------------------------------------------------------------- identities


def test_trusted_proxy_forwarded_for_gives_one_bucket_per_client(authd):
    inst = authd({**limits(default=3), "APP__TRUSTED_PROXY_CIDRS": '["127.0.0.0/8"]'})
    a = {"X-Forwarded-For": "198.51.100.1"}
    b = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}   # rightmost untrusted wins
    spend(inst, 3, "GET", "/rl/p", headers=a)
    assert_limited(inst.get("/rl/p", headers=a))
    assert_limited(inst.get("/rl/p", headers={"X-Forwarded-For": "198.51.100.1, 127.0.0.5"}))
    spend(inst, 3, "GET", "/rl/p", headers=b)
    assert_limited(inst.get("/rl/p", headers=b))
    spend(inst, 3, "GET", "/rl/p")                          # the proxy itself: 127.0.0.1
    assert_limited(inst.get("/rl/p"))


def test_untrusted_forwarded_for_is_ignored(authd):
    inst = authd(limits(default=3))
    for i in range(3):
        r = inst.get("/rl/p", headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
        assert r.status_code == 404
    assert_limited(inst.get("/rl/p", headers={"X-Forwarded-For": "198.51.100.77"}))
    assert_limited(inst.get("/rl/p"))


def test_admin_bootstrap_key_has_its_own_bucket(authd):
    key = "dev-bootstrap-admin-key-0123456789"
    inst = authd({**limits(default=3), "ADMIN_API_KEY": key})
    spend(inst, 3, "GET", "/rl/admin")
    assert_limited(inst.get("/rl/admin"))
    spend(inst, 3, "GET", "/rl/admin", headers={"X-Admin-API-Key": key})
    assert_limited(inst.get("/rl/admin", headers={"X-Admin-API-Key": key}))
    # (decision, docs/abuse-controls.md) a value that is not the configured
    # key stays in the IP bucket: no fresh bucket per random header.
    assert_limited(inst.get("/rl/admin", headers={"X-Admin-API-Key": "random-1"}))
    assert_limited(inst.get("/rl/admin", headers={"X-Admin-API-Key": key + "x"}))


def test_admin_header_without_configured_key_is_ignored(authd):
    inst = authd(limits(default=2))
    spend(inst, 2, "GET", "/rl/admin", headers={"X-Admin-API-Key": "a"})
    assert_limited(inst.get("/rl/admin", headers={"X-Admin-API-Key": "b"}))


# Tokens signed in the test with a configured key pair (config-ops §5.2:
# the configured pair becomes the active key of a fresh database).

@pytest.fixture(scope="module")
def keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(pub.encode()).digest()[:16]).rstrip(b"=")
    return {"private": priv, "public": pub, "kid": kid.decode(),
            "env": {"JWT__PRIVATE_KEY_PEM": priv, "JWT__PUBLIC_KEY_PEM": pub}}


def mint(kp, sub, typ="access", aud="auth-service", exp_in=600, kid=None, key=None):
    now = int(time.time())
    claims = {"sub": sub, "type": typ, "jti": str(uuid.uuid4()), "iat": now - 5,
              "exp": now + exp_in}
    if aud is not None:
        claims["aud"] = aud
    return jwt.encode(claims, key or kp["private"], algorithm="RS256",
                      headers={"kid": kid or kp["kid"]})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_verified_access_token_gives_a_user_bucket(authd, keypair):
    inst = authd({**limits(default=3), **keypair["env"]})
    assert inst.get("/.well-known/jwks.json").json()["keys"][0]["kid"] == keypair["kid"]
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
    spend(inst, 3, "GET", "/auth/sessions")
    assert_limited(inst.get("/auth/sessions"))
    spend(inst, 3, "GET", "/auth/sessions", headers=bearer(mint(keypair, u1)))
    # Another token of the same user shares the bucket (keyed by sub).
    assert_limited(inst.get("/auth/sessions", headers=bearer(mint(keypair, u1))))
    spend(inst, 3, "GET", "/auth/sessions", headers={"Authorization": "bearer  "
                                                     + mint(keypair, u2)})
    assert_limited(inst.get("/auth/sessions", headers=bearer(mint(keypair, u2))))


def test_unverified_tokens_fall_through_to_the_ip_bucket(authd, keypair):
    inst = authd({**limits(default=2), **keypair["env"]})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    u = str(uuid.uuid4())
    bad = [
        mint(keypair, u, typ="refresh"),
        mint(keypair, u, exp_in=-10),
        mint(keypair, u, aud="other-service"),
        mint(keypair, u, aud=None),
        mint(keypair, u, key=other),                    # wrong signature
        mint(keypair, u, kid="unknown-kid-000000000"),
        "not.a.token",
    ]
    spend(inst, 2, "GET", "/rl/t", headers=bearer(bad[0]))
    for tok in bad:
        assert_limited(inst.get("/rl/t", headers=bearer(tok)))
    assert_limited(inst.get("/rl/t", headers={"Authorization": "Basic " + mint(keypair, u)}))
    # The same user with a good token is its own bucket.
    spend(inst, 2, "GET", "/rl/t", headers=bearer(mint(keypair, u)))


def test_token_endpoint_client_and_refresh_identities(authd, keypair):
    inst = authd({**limits(default=1000, token=2), **keypair["env"]})
    form = {"grant_type": "client_credentials", "client_id": "client_one",
            "client_secret": "cs_wrong"}
    spend(inst, 2, "POST", "/auth/token", data=form)
    assert_limited(inst.post("/auth/token", data=form), no_store=True)
    # Wrong secret or not, the client id is the bucket.
    assert_limited(inst.post("/auth/token", data={**form, "client_secret": "other"}),
                   no_store=True)
    spend(inst, 2, "POST", "/auth/token", data={**form, "client_id": "client_two"})
    # The IP bucket is still untouched; a form without the grant uses it.
    spend(inst, 2, "POST", "/auth/token", data={"client_id": "client_one"})
    assert_limited(inst.post("/auth/token", json={}), no_store=True)
    # A verifying refresh token in the JSON body: the user's bucket.
    u = str(uuid.uuid4())
    spend(inst, 2, "POST", "/auth/token", json={"refresh_token": mint(keypair, u, typ="refresh")})
    assert_limited(inst.post("/auth/token", json={"refresh_token": mint(keypair, u, "refresh")}),
                   no_store=True)
    # An access token is not a refresh token: IP bucket (exhausted), not a
    # fresh bucket for its user.
    u2 = str(uuid.uuid4())
    assert_limited(inst.post("/auth/token", json={"refresh_token": mint(keypair, u2)}),
                   no_store=True)


# --------------------------------------------------------------------------- the sliding log


def test_retry_after_counts_from_the_oldest_accepted_request(authd):
    """Retry-After = ceil(oldest accepted + 60 s - now), bounded here by the
    wall-clock times around the first accepted and each refused request;
    refused requests do not move the window."""
    inst = authd(limits(default=2))
    a0 = time.time()
    assert inst.get("/rl/w").status_code == 404
    a1 = time.time()
    time.sleep(0.6)
    assert inst.get("/rl/w").status_code == 404
    values = []
    for pause in (0.0, 0.7, 0.4, 0.9, 0.3):
        time.sleep(pause)
        s0 = time.time()
        v = assert_limited(inst.get("/rl/w"))
        s1 = time.time()
        lo, hi = math.ceil(60 + a0 - s1), math.ceil(60 + a1 - s0)
        assert lo <= v <= hi, (v, lo, hi)
        values.append(v)
    assert values == sorted(values, reverse=True) and values[0] > values[-1], values


@pytest.mark.postgres_only
def test_rejected_requests_are_not_recorded(authd, world):
    """Two instances on one Redis with limits 3 and 6: if the rejected
    requests at the first were recorded, the second would refuse too."""
    a = authd(limits(default=3))
    b = authd(limits(default=6), share_with=a)
    spend(a, 3, "GET", "/rl/shared")
    for _ in range(10):
        assert_limited(a.get("/rl/shared"))
    assert world.redis.cli("ZCARD", "rate_limit:/rl/shared:ip:127.0.0.1").strip() == "3"
    ttl = int(world.redis.cli("PTTL", "rate_limit:/rl/shared:ip:127.0.0.1").strip())
    assert 55_000 <= ttl <= 61_000
    spend(b, 3, "GET", "/rl/shared")
    assert_limited(b.get("/rl/shared"))
    assert_limited(a.get("/rl/shared"))


@pytest.mark.postgres_only
def test_two_instances_share_the_count(authd):
    a = authd(limits(default=5))
    b = authd(limits(default=5), share_with=a)
    assert a.env["DATABASE__URL"] == b.env["DATABASE__URL"]
    for inst in (a, b, a, b, a):
        assert inst.get("/rl/both").status_code == 404
    assert_limited(b.get("/rl/both"))
    assert_limited(a.get("/rl/both"))
    spend(b, 5, "GET", "/rl/other")
    assert_limited(a.get("/rl/other"))


def _redis_calls(redis) -> dict[str, int]:
    out = {}
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            out[name] = int(rest.split("calls=")[1].split(",")[0])
    out.pop("info", None)
    return out


def test_one_store_round_trip_per_limited_request_none_when_unlimited(authd):
    """Counted on a dedicated Redis (no worker): a limited request costs one
    script call, health/metrics/service endpoints cost nothing."""
    redis = RedisServer().start()
    try:
        inst = authd({**limits(default=1000), "REDIS__URL": redis.url},
                     args=("serve", "--no-worker"))
        inst.get("/rl/warm")                     # connection set-up (SCRIPT LOAD etc.)
        before = _redis_calls(redis)
        for path in ("/health/live", "/metrics", "/auth/validate", "/.well-known/jwks.json"):
            for _ in range(5):
                assert inst.get(path).status_code != 429
        assert _redis_calls(redis) == before
        for _ in range(7):
            inst.get("/rl/counted")
        after = _redis_calls(redis)
        delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        # One script per request (the commands it runs inside are counted
        # too, but no other client command is sent).
        assert delta.get("evalsha", 0) + delta.get("eval", 0) == 7, delta
        inside = {"zremrangebyscore", "zcard", "zrange", "zadd", "pexpire"}
        assert set(delta) <= {"evalsha", "eval"} | inside, delta
    finally:
        redis.destroy()


# --------------------------------------------------------------------------- store failure

FAIL_CLOSED = [("POST", "/auth/login"), ("POST", "/auth/token"),
               ("POST", "/auth/otp/verify/login"), ("POST", "/auth/password/reset"),
               ("POST", "/auth/verify-email"), ("POST", "/auth/verify-email/resend"),
               ("POST", "/auth/reauth")]
# (method, path, status); None = whatever the route answers once it exists,
# as long as the limiter let it through.
FAIL_OPEN = [("GET", "/rl/open", 404), ("POST", "/_test/echo", 200), ("GET", "/auth/signup", None),
             ("GET", "/auth/sessions", None), ("GET", "/health/live", 200)]


def test_redis_down_fails_closed_on_sensitive_paths_and_open_elsewhere(authd):
    redis = RedisServer().start()
    try:
        inst = authd({**limits(default=100), "REDIS__URL": redis.url})
        assert inst.post("/auth/login", json={}).status_code not in (429, 503)
        redis.stop()
        for method, path in FAIL_CLOSED:
            cid = new_cid("down")
            r = inst.request(method, path, json={}, headers={"X-Correlation-ID": cid})
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.json() == UNAVAILABLE
            assert "retry-after" not in r.headers
            for name, value in SECURITY_HEADERS.items():
                assert r.headers.get(name) == value
            assert r.headers.get("X-Correlation-ID") == cid
            if path in ("/auth/login", "/auth/token", "/auth/otp/verify/login", "/auth/reauth"):
                assert r.headers.get("Cache-Control") == "no-store"
            rec = inst.wait_for_log(lambda l: l.get("event") == "rate_limit_backend_unavailable"
                                    and l.get("correlation_id") == cid)
            assert rec is not None, inst.output_tail()
            assert rec["level"] == "warning" and rec["path"] == path and rec["method"] == method
        for method, path, status in FAIL_OPEN:
            kw = {"json": {}} if method == "POST" else {}
            cid = new_cid("open")
            r = inst.request(method, path, headers={"X-Correlation-ID": cid}, **kw)
            if status is None:
                assert r.status_code not in (429, 503), (path, r.status_code, r.text)
            else:
                assert r.status_code == status, (path, r.status_code, r.text)
            if path != "/health/live":
                assert inst.wait_for_log(
                    lambda l: l.get("event") == "rate_limit_backend_unavailable"
                    and l.get("correlation_id") == cid) is not None
        # Health never touches the limiter store.
        assert not [l for l in inst.logs() if l.get("event") == "rate_limit_backend_unavailable"
                    and l.get("path") == "/health/live"]
        redis.start()
        ok = False
        for _ in range(50):
            if inst.post("/auth/login", json={}).status_code not in (429, 503):
                ok = True
                break
            time.sleep(0.1)
        assert ok, "limiter did not recover after Redis came back"
    finally:
        redis.destroy()
