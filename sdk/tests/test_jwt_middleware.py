"""JWTAuthMiddleware (sdk.md §8, §9, §16 items 17-44, 67-69)."""

from __future__ import annotations

import asyncio
import inspect
import time

import httpx
import pytest

from sdk_testlib import (AUD, DROP, FakeAuthd, asgi_client, compact, echo_app, forge, key,
                      m2m_claims, mint, user_claims)
from sdk.cache import JWKSCacheManager
from sdk.middleware import JWTAuthMiddleware

INVALID = compact("Invalid token.", "invalid_token")
EXPIRED = compact("Token has expired.", "token_expired")
UNAVAIL = compact("Auth service unavailable.", "session_expired")


def build(fake: FakeAuthd, **kw):
    app = echo_app()
    kw.setdefault("expected_audience", AUD)
    app.add_middleware(JWTAuthMiddleware, auth_base_url="http://ignored",
                       auth_client=fake.client(), **kw)
    return asgi_client(app)


async def call(fake, token=None, *, headers=None, cookies=None, method="GET", client=None,
               **kw):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    c = client or build(fake, **kw)
    if cookies:
        h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return await c.request(method, "/x", headers=h)


def expect(r, status, body):
    assert r.status_code == status, r.text
    assert r.content == body
    assert r.headers["content-type"] == "application/json"


# --- success paths ---------------------------------------------------------

async def test_user_identity_exact(fake):
    c = user_claims(sub="u-9", role="admin", scopes=["a", 3], email="A@Example.com",
                    email_otp_enabled=True, auth_time=1700000000)
    r = await call(fake, mint(c))
    assert r.status_code == 200, r.text
    assert r.json()["user"] == {"type": "user", "user_id": "u-9", "email": "A@Example.com",
                                "email_verified": True, "email_otp_enabled": True,
                                "role": "admin", "scopes": ["a", "3"],
                                "auth_time": 1700000000}
    assert list(r.json()["user"]) == ["type", "user_id", "email", "email_verified",
                                      "email_otp_enabled", "role", "scopes", "auth_time"]
    assert r.json()["transport"] == "authorization"


async def test_two_requests_one_jwks_two_validates(fake):
    client = build(fake)
    tok = mint(user_claims())
    for _ in range(2):
        assert (await call(fake, tok, client=client)).status_code == 200
    assert fake.calls == {"jwks": 1, "validate": 2, "introspect": 0}
    v = [r for r in fake.requests if r.url.path == "/auth/validate"][0]
    assert v.headers["authorization"] == f"Bearer {tok}"


async def test_m2m_service_identity_no_validate(fake):
    r = await call(fake, mint(m2m_claims()))
    assert r.json()["user"] == {"type": "service", "client_id": "client_abc",
                                "role": "service",
                                "scopes": ["billing:read", "billing:write"], "email": None}
    assert fake.calls["validate"] == 0


@pytest.mark.parametrize("scope,want", [(DROP, []), (" a  b ", ["a", "b"])])
async def test_m2m_scope_parsing(fake, scope, want):
    r = await call(fake, mint(m2m_claims(scope=scope)))
    assert r.json()["user"]["scopes"] == want


async def test_cookie_source(fake):
    tok = mint(user_claims())
    r = await call(fake, cookies={"__Host-auth_access": tok},
                   token_sources=["cookie", "authorization"])
    assert r.status_code == 200 and r.json()["transport"] == "cookie"
    v = [q for q in fake.requests if q.url.path == "/auth/validate"][0]
    assert v.headers["authorization"] == f"Bearer {tok}"


async def test_header_wins_over_cookie(fake):
    r = await call(fake, mint(user_claims(sub="hdr")),
                   cookies={"__Host-auth_access": mint(user_claims(sub="ck"))},
                   token_sources=["authorization", "cookie"])
    assert r.json()["user"]["user_id"] == "hdr"
    assert r.json()["transport"] == "authorization"


async def test_cookie_ignored_by_default(fake):
    r = await call(fake, cookies={"__Host-auth_access": mint(user_claims())})
    expect(r, 401, INVALID)
    assert fake.calls["jwks"] == 0


@pytest.mark.parametrize("value,ok", [("bearer {t}", True), ("BEARER    {t}  ", True),
                                      ("Bearer\t{t}", False), ("Basic {t}", False),
                                      ("Bearer", False), ("Bearer   ", False)])
async def test_scheme_matching(fake, value, ok):
    tok = mint(user_claims())
    r = await call(fake, headers={"Authorization": value.format(t=tok)})
    assert r.status_code == (200 if ok else 401)


async def test_basic_falls_through_to_cookie(fake):
    tok = mint(user_claims())
    r = await call(fake, headers={"Authorization": "Basic abc"},
                   cookies={"__Host-auth_access": tok},
                   token_sources=["authorization", "cookie"])
    assert r.status_code == 200 and r.json()["transport"] == "cookie"


@pytest.mark.parametrize("aud,expected,ok", [
    ("orders-api", "orders-api", True),
    (" orders-api ", "orders-api", True),
    (["auth-service", "orders-api"], "orders-api", True),
    (["orders-api"], ["orders-api", "billing"], False),
    (["orders-api", "billing", "x"], ["orders-api", "billing"], True),
    (DROP, "orders-api", False),
    (123, "orders-api", False),
    ({}, "orders-api", False),
    ("Orders-API", "orders-api", False),
])
async def test_audience_and_semantics(fake, aud, expected, ok):
    r = await call(fake, mint(user_claims(aud=aud)), expected_audience=expected)
    if ok:
        assert r.status_code == 200
    else:
        expect(r, 401, INVALID)


async def test_rotation_same_kid(fake):
    stale = dict(key("k2").jwk, kid="k1")       # other key material under kid k1
    fake.jwks_payloads = [{"keys": [stale]}, {"keys": [key("k1").jwk]}]
    r = await call(fake, mint(user_claims()))
    assert r.status_code == 200
    assert fake.calls["jwks"] == 2


async def test_numeric_kid_matches(fake):
    fake.jwks_payloads = [{"keys": [dict(key("k1").jwk, kid="7")]}]
    r = await call(fake, mint(user_claims(), kid=7, signer="k1"))
    assert r.status_code == 200


async def test_numeric_sub_and_scopes(fake):
    r = await call(fake, mint(user_claims(sub=42, scopes="a b")))
    assert r.json()["user"]["user_id"] == "42"
    assert r.json()["user"]["scopes"] == []


# --- rejections --------------------------------------------------------------

@pytest.mark.parametrize("over", [{"jti": DROP}, {"jti": ""}, {"sub": DROP}, {"iat": DROP},
                                  {"exp": DROP}, {"sub": ""}, {"iat": 0}, {"exp": None},
                                  {"exp": "9999999999"}, {"iat": True}])
async def test_essential_claims(fake, over):
    expect(await call(fake, mint(user_claims(**over))), 401, INVALID)
    assert fake.calls["validate"] == 0


async def test_expired(fake):
    now = int(time.time())
    expect(await call(fake, mint(user_claims(exp=now - 1))), 401, EXPIRED)
    assert fake.calls == {"jwks": 2, "validate": 0, "introspect": 0}


async def test_exp_equal_now_passes(fake, monkeypatch):
    now = int(time.time())
    tok = mint(user_claims(exp=now, iat=now - 10))
    monkeypatch.setattr(time, "time", lambda: float(now) + 0.9)
    assert (await call(fake, tok)).status_code == 200


async def test_future_iat_and_nbf(fake):
    now = int(time.time())
    # R3: 5 s leeway for iat only (default); beyond it -> 401.
    assert (await call(fake, mint(user_claims(iat=now + 3)))).status_code == 200
    expect(await call(fake, mint(user_claims(iat=now + 30))), 401, INVALID)
    expect(await call(fake, mint(user_claims(iat=now + 5)), leeway_seconds=0), 401, INVALID)
    expect(await call(fake, mint(user_claims(nbf=now + 3))), 401, INVALID)


async def test_types(fake):
    for typ in ("otp_challenge", "action_token", "refresh"):
        expect(await call(fake, mint(user_claims(type=typ))), 401, INVALID)
    assert fake.calls["validate"] == 0
    r = await call(fake, mint(user_claims(type="refresh")), required_token_type="")
    assert r.status_code == 200 and fake.calls["validate"] == 1
    expect(await call(fake, mint(m2m_claims()), required_token_type="refresh"), 401, INVALID)
    assert (await call(fake, mint(m2m_claims()), required_token_type="m2m")).status_code == 200
    expect(await call(fake, mint(user_claims()), required_token_type="m2m"), 401, INVALID)
    expect(await call(fake, mint(user_claims()), required_token_type="other"), 401, INVALID)


@pytest.mark.parametrize("role", [DROP, "superadmin", ["admin"], {"a": 1}])
async def test_bad_role_no_refresh(fake, role):
    expect(await call(fake, mint(user_claims(role=role))), 401, INVALID)
    assert fake.calls["jwks"] == 1 and fake.calls["validate"] == 0


async def test_m2m_role_and_scope_type(fake):
    expect(await call(fake, mint(m2m_claims(role="user"))), 401, INVALID)
    expect(await call(fake, mint(m2m_claims(scope=["a"]))), 401, INVALID)


async def test_access_with_service_role_is_user_identity(fake):
    r = await call(fake, mint(user_claims(role="service")))
    assert r.json()["user"]["type"] == "user" and r.json()["user"]["role"] == "service"


@pytest.mark.parametrize("over", [{"email": DROP}, {"email": "  "}, {"email_verified": "true"},
                                  {"email_otp_enabled": None}, {"auth_time": 1.5}])
async def test_profile_claims_after_validate(fake, over):
    expect(await call(fake, mint(user_claims(**over))), 401, INVALID)
    assert fake.calls["validate"] == 1


async def test_attacks_invalid_token(fake):
    now = int(time.time())
    pub_pem = key("k1").private.public_key().public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).Encoding.PEM,
        __import__("cryptography.hazmat.primitives.serialization",
                   fromlist=["x"]).PublicFormat.SubjectPublicKeyInfo)
    import base64
    import hashlib
    import hmac as _hmac
    import json as _json
    c = user_claims()
    h = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    seg = lambda o: base64.urlsafe_b64encode(_json.dumps(o).encode()).rstrip(b"=").decode()
    signing = f"{seg(h)}.{seg(c)}"
    mac = _hmac.new(pub_pem, signing.encode(), hashlib.sha256).digest()
    hs256 = signing + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    tokens = [
        forge({"alg": "none", "kid": "k1"}, c, b""),
        hs256,
        "garbage",
        "a.b.c",
        mint(c, kid=None),
        mint(c, kid="nope", signer="k2"),
        mint(c, kid="k1", signer="k2"),           # bad signature
        forge({"alg": "RS256", "kid": "k1"}, c),
        forge({"alg": "RSÄ256", "kid": "k1"}, c),
        forge({"alg": "RS256", "kid": ["k1"]}, c),
    ]
    client = build(fake)
    for t in tokens:
        expect(await call(fake, t, client=client), 401, INVALID)
    assert fake.calls["validate"] == 0


@pytest.mark.parametrize("jwks", [{"keys": []}, {"keys": [dict(key("k1").jwk, use="enc")]},
                                  {"keys": [dict(key("k1").jwk, n="!!notbase64")]},
                                  {"keys": [dict(key("k1").jwk, kty="EC")]},
                                  {"keys": [dict(key("k1").jwk, n="")]}])
async def test_unusable_jwks(fake, jwks):
    fake.jwks_payloads = [jwks]
    expect(await call(fake, mint(user_claims())), 401, INVALID)


async def test_malformed_jwk_skipped_good_one_used(fake):
    fake.jwks_payloads = [{"keys": [{"kid": "bad", "kty": "RSA", "n": "%%%", "e": "1"},
                                    key("k1").jwk]}]
    assert (await call(fake, mint(user_claims()))).status_code == 200


@pytest.mark.parametrize("status,body,want", [
    (401, {"detail": "Session expired.", "code": "session_expired"},
     compact("Session expired.", "session_expired")),
    (403, {"detail": "Nope.", "code": "x_code"}, compact("Nope.", "x_code")),
    (401, {}, INVALID),
])
async def test_validate_rejection_passthrough(fake, status, body, want):
    fake.validate = lambda req: httpx.Response(status, json=body)
    expect(await call(fake, mint(user_claims())), 401, want)


@pytest.mark.parametrize("resp", [
    lambda r: httpx.Response(200, json={}), lambda r: httpx.Response(404),
    lambda r: httpx.Response(429), lambda r: httpx.Response(500),
    lambda r: httpx.Response(401, content=b"nope"), "down"])
async def test_validate_trouble_503(fake, resp):
    fake.validate = resp
    expect(await call(fake, mint(user_claims())), 503, UNAVAIL)


@pytest.mark.parametrize("mode", ["500", "404", "down", "badpayload"])
async def test_jwks_trouble_cold_503(fake, mode):
    if mode == "down":
        fake.jwks_down = True
    elif mode == "badpayload":
        fake.jwks_payloads = [{"keys": "x"}]
    else:
        fake.jwks_status = int(mode)
    expect(await call(fake, mint(user_claims())), 503, UNAVAIL)


async def test_outage_with_warm_cache(fake):
    client = build(fake)
    assert (await call(fake, mint(m2m_claims()), client=client)).status_code == 200
    fake.jwks_down = True
    fake.validate = "down"
    assert (await call(fake, mint(m2m_claims()), client=client)).status_code == 200
    expired = mint(user_claims(exp=int(time.time()) - 5))
    expect(await call(fake, expired, client=client), 503, UNAVAIL)
    expect(await call(fake, mint(user_claims()), client=client), 503, UNAVAIL)
    smart = build(fake, jwks_refresh_on_any_failure=False)
    fake.jwks_down = False
    assert (await call(fake, mint(m2m_claims()), client=smart)).status_code == 200
    fake.jwks_down = True
    expect(await call(fake, expired, client=smart), 401, EXPIRED)
    expect(await call(fake, "garbage", client=smart), 401, INVALID)


async def test_bad_bearer_does_not_fall_through(fake):
    r = await call(fake, "garbage", cookies={"__Host-auth_access": mint(user_claims())},
                   token_sources=["authorization", "cookie"])
    expect(r, 401, INVALID)


async def test_missing_token_no_calls_and_options_not_exempt(fake):
    expect(await call(fake), 401, INVALID)
    expect(await call(fake, method="OPTIONS"), 401, INVALID)
    assert fake.calls == {"jwks": 0, "validate": 0, "introspect": 0}


def test_constructor_validation_and_signature():
    app = echo_app()
    for kw, msg in [({"expected_audience": "  "}, "expected_audience must be non-empty."),
                    ({"expected_audience": []}, "expected_audience must be non-empty."),
                    ({"expected_audience": AUD, "token_sources": ["query"]},
                     "token_sources entries must be 'authorization' or 'cookie'."),
                    ({"expected_audience": AUD, "access_cookie_name": " "},
                     "access_cookie_name must be non-empty.")]:
        with pytest.raises(ValueError) as ei:
            JWTAuthMiddleware(app, "http://a", **kw)
        assert str(ei.value) == msg
    mw = JWTAuthMiddleware(app, "http://a", AUD, token_sources=[" COOKIE ", "cookie"])
    assert mw.token_sources == ["cookie"]
    assert JWTAuthMiddleware(app, "http://a", AUD, token_sources=[]).token_sources == \
        ["authorization"]
    params = list(inspect.signature(JWTAuthMiddleware).parameters.values())
    names = [p.name for p in params[:8]]
    assert names == ["app", "auth_base_url", "expected_audience", "auth_client", "jwks_cache",
                     "required_token_type", "token_sources", "access_cookie_name"]
    assert [p.default for p in params[3:8]] == [None, None, "access", None,
                                               "__Host-auth_access"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:8])


async def test_hostile_input_never_500(fake):
    client = build(fake, token_sources=["authorization", "cookie"])
    hostile = [
        {"Authorization": "Bäärer xyz".encode("utf-8")},
        {"Authorization": b"Bearer " + b"a" * 300_000},
        {"Authorization": "Bearer é.é.é".encode("utf-8")},
        {"Authorization": "Bearer \u00e9\u00ff".encode("latin-1")},
        {"Authorization": ("Bearer " + forge({"alg": "RS256", "kid": {"x": 1}}, {})).encode()},
        {"Cookie": "__Host-auth_access=\u00e4\u00e4;;=;".encode("utf-8")},
    ]
    for h in hostile:
        r = await client.get("/x", headers=h)
        assert r.status_code == 401, (h, r.text)
    r = await call(fake, mint(user_claims(role=["admin"])), client=client)
    expect(r, 401, INVALID)
    # A correctly signed but oversized token (> 16 KiB) is refused without any call.
    fresh = FakeAuthd()
    big = mint(user_claims(pad="x" * 17_000))
    expect(await call(fresh, big), 401, INVALID)
    assert fresh.calls["jwks"] == 0


async def test_dispatch_is_public(fake):
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    mw = JWTAuthMiddleware(echo_app(), "http://a", AUD, auth_client=fake.client())
    scope = {"type": "http", "method": "GET", "path": "/", "headers":
             [(b"authorization", f"Bearer {mint(user_claims())}".encode())],
             "query_string": b""}
    req = Request(scope)

    async def call_next(request):
        return PlainTextResponse(request.state.user["user_id"])

    resp = await mw.dispatch(req, call_next)
    assert resp.body == b"user-1"


async def test_websocket_authenticated(fake):
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    async def ws(websocket):
        await websocket.accept()
        await websocket.send_json(websocket.state.user)
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    app.add_middleware(JWTAuthMiddleware, auth_base_url="http://x", expected_audience=AUD,
                       auth_client=fake.client())
    with TestClient(app) as tc:
        with pytest.raises(WebSocketDisconnect) as ei:
            with tc.websocket_connect("/ws") as w:
                w.receive_json()
        assert ei.value.code == 1008
        with tc.websocket_connect("/ws", headers={
                "Authorization": f"Bearer {mint(m2m_claims())}"}) as w:
            assert w.receive_json()["type"] == "service"


# --- improvements -------------------------------------------------------------

async def test_forced_refresh_single_flight_and_cooldown(fake):
    client = build(fake, jwks_refresh_on_any_failure=False,
                   jwks_cache=JWKSCacheManager(fake.client(), min_refresh_interval_seconds=10))
    assert (await call(fake, mint(user_claims()), client=client)).status_code == 200
    assert fake.calls["jwks"] == 1
    unknown = [mint(user_claims(), kid="zz", signer="k2") for _ in range(20)]
    rs = await asyncio.gather(*(call(fake, t, client=client) for t in unknown))
    assert all(r.status_code == 401 for r in rs)
    assert fake.calls["jwks"] == 2
    await call(fake, unknown[0], client=client)          # inside the cooldown
    assert fake.calls["jwks"] == 2
    await call(fake, mint(user_claims(exp=int(time.time()) - 9)), client=client)
    assert fake.calls["jwks"] == 2


async def test_session_cache(fake):
    client = build(fake, session_cache_ttl_seconds=10)
    tok = mint(user_claims())
    for _ in range(5):
        assert (await call(fake, tok, client=client)).status_code == 200
    assert fake.calls["validate"] == 1
    tok2 = mint(user_claims())
    rs = await asyncio.gather(*(call(fake, tok2, client=client) for _ in range(5)))
    assert all(r.status_code == 200 for r in rs)
    assert fake.calls["validate"] == 2
    # An entry never outlives the token's exp.
    short = mint(user_claims(exp=int(time.time()) + 1))
    assert (await call(fake, short, client=client)).status_code == 200
    await asyncio.sleep(2.1)
    expect(await call(fake, short, client=client), 401, EXPIRED)
    # 5xx is never cached; 401 is cached with its body.
    fake.validate = lambda r: httpx.Response(500)
    tok3 = mint(user_claims())
    expect(await call(fake, tok3, client=client), 503, UNAVAIL)
    fake.validate = lambda r: httpx.Response(401, json={"detail": "Session expired.",
                                                        "code": "session_expired"})
    n = fake.calls["validate"]
    for _ in range(2):
        expect(await call(fake, tok3, client=client), 401,
               compact("Session expired.", "session_expired"))
    assert fake.calls["validate"] == n + 1


async def test_stale_if_error(fake):
    t = [1000.0]
    cache = JWKSCacheManager(fake.client(), ttl_seconds=300, now=lambda: t[0],
                             stale_if_error_seconds=600)
    client = build(fake, jwks_cache=cache)
    assert (await call(fake, mint(m2m_claims()), client=client)).status_code == 200
    fake.jwks_down = True
    t[0] += 400
    assert (await call(fake, mint(m2m_claims()), client=client)).status_code == 200
    t[0] += 600
    expect(await call(fake, mint(m2m_claims()), client=client), 503, UNAVAIL)


async def test_exclude_paths_and_error_headers(fake):
    client = build(fake, exclude_paths=["/x"], exclude_methods=["OPTIONS"])
    assert (await client.get("/x")).status_code == 200
    assert (await client.options("/y")).status_code == 200
    assert (await client.get("/y")).status_code == 401
    client = build(fake, error_headers=True)
    r = await client.get("/y")
    assert r.headers["www-authenticate"] == "Bearer"


async def test_lifespan_closes_owned_client():
    from starlette.testclient import TestClient
    app = echo_app()
    app.add_middleware(JWTAuthMiddleware, auth_base_url="http://127.0.0.1:9",
                       expected_audience=AUD)
    with TestClient(app) as tc:
        tc.get("/x")
        mw = app.middleware_stack
        while not isinstance(mw, JWTAuthMiddleware):
            mw = mw.app
        client = mw.auth_client.http_client
        assert not client.is_closed
    assert client.is_closed
