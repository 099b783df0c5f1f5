"""APIKeyAuthMiddleware and CookieCSRFMiddleware (sdk.md §10, §11; §16 items 45-59)."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json

import httpx
import pytest
from starlette.middleware.base import BaseHTTPMiddleware

from sdk_testlib import AUD, asgi_client, compact, echo_app, mint, user_claims
from sdk.middleware import APIKeyAuthMiddleware, CookieCSRFMiddleware, JWTAuthMiddleware

INVALID_KEY = compact("Invalid API key.", "invalid_api_key")
UNAVAIL = compact("Auth service unavailable.", "session_expired")
CSRF = b'{"detail":"Invalid CSRF token.","code":"invalid_csrf_token"}'


def build(fake, **kw):
    app = echo_app()
    app.add_middleware(APIKeyAuthMiddleware, auth_base_url="http://ignored",
                       auth_client=fake.client(), **kw)
    return asgi_client(app)


def valid(**over):
    body = {"valid": True, "user_id": None, "scopes": ["orders:read"], "key_id": "key-1",
            "expires_at": None, "service": "svc"}
    body.update(over)
    return lambda req: httpx.Response(200, json=body)


async def test_valid_key_cached(fake):
    c = build(fake)
    for _ in range(2):
        r = await c.get("/x", headers={"X-API-Key": "sk_abc"})
        assert r.json() == {"user": {"type": "api_key", "key_id": "key-1", "service": "svc",
                                     "scopes": ["orders:read"], "email": None},
                            "transport": None}
    assert fake.calls["introspect"] == 1
    assert json.loads(fake.requests[0].content) == {"api_key": "sk_abc"}


@pytest.mark.parametrize("code,detail", [("invalid_api_key", "Invalid API key."),
                                         ("expired_api_key", "API key expired."),
                                         ("revoked_api_key", "API key revoked."),
                                         ("odd", "Invalid API key.")])
async def test_invalid_codes_cached(fake, code, detail):
    fake.introspect = lambda req: httpx.Response(200, json={"valid": False, "code": code})
    c = build(fake)
    want = code if code != "odd" else "invalid_api_key"
    for _ in range(2):
        r = await c.get("/x", headers={"X-API-Key": "sk_abc"})
        assert r.status_code == 401 and r.content == compact(detail, want)
    assert fake.calls["introspect"] == 1


async def test_down_and_no_stale_fallback(fake):
    c = build(fake, valid_ttl_seconds=1)
    assert (await c.get("/x", headers={"X-API-Key": "k1"})).status_code == 200
    fake.introspect = "down"
    await asyncio.sleep(1.2)
    r = await c.get("/x", headers={"X-API-Key": "k1"})
    assert r.status_code == 503 and r.content == UNAVAIL
    assert fake.calls["introspect"] == 2


@pytest.mark.parametrize("headers,ok", [
    ({"X-API-Key": "  sk_a  "}, True), ({"Authorization": "ApiKey sk_a"}, True),
    ({"Authorization": "apikey   sk_a "}, True), ({"Authorization": "APIKEY sk_a"}, True),
    ({"X-API-Key": "  ", "Authorization": "ApiKey sk_a"}, True),
    ({"Authorization": "Bearer sk_a"}, False), ({}, False),
    ({"Authorization": "ÄpiKey sk_a".encode()}, False)])
async def test_extraction(fake, headers, ok):
    seen = []
    fake.introspect = lambda req: (seen.append(json.loads(req.content)["api_key"])
                                   or httpx.Response(200, json={"valid": True, "key_id": "k",
                                                                "scopes": []}))
    r = await build(fake).get("/x", headers=headers)
    if ok:
        assert r.status_code == 200 and seen == ["sk_a"]
    else:
        assert r.status_code == 401 and r.content == INVALID_KEY and not seen


async def test_x_api_key_wins(fake):
    seen = []
    fake.introspect = lambda req: (seen.append(json.loads(req.content)["api_key"])
                                   or valid()(req))
    await build(fake).get("/x", headers={"X-API-Key": "one", "Authorization": "ApiKey two"})
    assert seen == ["one"]


@pytest.mark.parametrize("over,service", [({"service": "  billing "}, "billing"),
                                          ({"service": " "}, "orders"),
                                          ({"service": None, "scopes": ["plain"]}, "unknown"),
                                          ({"service": None, "scopes": []}, "unknown")])
async def test_service_derivation(fake, over, service):
    fake.introspect = valid(**over)
    r = await build(fake).get("/x", headers={"X-API-Key": "k"})
    assert r.json()["user"]["service"] == service


@pytest.mark.parametrize("key_id", [None, "  "])
async def test_blank_key_id(fake, key_id):
    fake.introspect = valid(key_id=key_id)
    c = build(fake)
    for _ in range(2):
        r = await c.get("/x", headers={"X-API-Key": "k"})
        assert r.status_code == 401 and r.content == INVALID_KEY
    assert fake.calls["introspect"] == 1


@pytest.mark.parametrize("resp", [lambda r: httpx.Response(422), lambda r: httpx.Response(401),
                                  lambda r: httpx.Response(429),
                                  lambda r: httpx.Response(200, json={"valid": "true"})])
async def test_client_errors_503_uncached(fake, resp):
    fake.introspect = resp
    c = build(fake)
    for _ in range(2):
        r = await c.get("/x", headers={"X-API-Key": "k"})
        assert r.status_code == 503 and r.content == UNAVAIL
    assert fake.calls["introspect"] == 2


async def test_client_errors_as_invalid_option(fake):
    fake.introspect = lambda r: httpx.Response(422)
    c = build(fake, client_errors_as_invalid=True)
    for _ in range(2):
        assert (await c.get("/x", headers={"X-API-Key": "k"})).content == INVALID_KEY
    assert fake.calls["introspect"] == 1


async def test_valid_ttl_zero(fake):
    c = build(fake, valid_ttl_seconds=0)
    for _ in range(3):
        assert (await c.get("/x", headers={"X-API-Key": "k"})).status_code == 200
    assert fake.calls["introspect"] == 3


async def test_improvements_coalescing_copy_expiry(fake):
    async def slow(req):
        await asyncio.sleep(0.05)
        return valid()(req)
    fake.introspect = slow
    app = echo_app()
    seen_ids = []

    @app.get("/mutate")
    async def mutate(request: __import__("fastapi").Request):
        u = request.state.user
        seen_ids.append(id(u))
        u["scopes"].append("evil")
        u["key_id"] = "evil"
        return u

    app.add_middleware(APIKeyAuthMiddleware, auth_base_url="x", auth_client=fake.client())
    c = asgi_client(app)
    rs = await asyncio.gather(*(c.get("/mutate", headers={"X-API-Key": "k"})
                                for _ in range(10)))
    assert all(r.status_code == 200 for r in rs)
    assert fake.calls["introspect"] == 1
    r = await c.get("/x", headers={"X-API-Key": "k"})
    assert r.json()["user"]["key_id"] == "key-1"
    assert r.json()["user"]["scopes"] == ["orders:read"]
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)).isoformat()
    fake.introspect = valid(expires_at=soon)
    c2 = build(fake)
    await c2.get("/x", headers={"X-API-Key": "k2"})
    await c2.get("/x", headers={"X-API-Key": "k2"})
    assert fake.calls["introspect"] == 2
    await asyncio.sleep(1.1)
    await c2.get("/x", headers={"X-API-Key": "k2"})
    assert fake.calls["introspect"] == 3


def test_apikey_signature():
    params = list(inspect.signature(APIKeyAuthMiddleware).parameters.values())
    assert [(p.name, p.default) for p in params[1:6]] == [
        ("auth_base_url", inspect.Parameter.empty), ("auth_client", None),
        ("cache_maxsize", 10000), ("valid_ttl_seconds", 60), ("invalid_ttl_seconds", 10)]


# --- CSRF ---------------------------------------------------------------------

class SetTransport(BaseHTTPMiddleware):
    def __init__(self, app, transport):
        super().__init__(app)
        self.transport = transport

    async def dispatch(self, request, call_next):
        if self.transport is not None:
            request.state.auth_transport = self.transport
        return await call_next(request)


def csrf_app(transport=None, **kw):
    app = echo_app()
    app.add_middleware(CookieCSRFMiddleware, **kw)
    app.add_middleware(SetTransport, transport=transport)
    return asgi_client(app)


def cookies(**kv):
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in kv.items())}


async def test_csrf_missing_header_403_exact_bytes():
    r = await csrf_app("cookie").post("/x", headers=cookies(**{"__Host-auth_csrf": "t"}))
    assert r.status_code == 403 and r.content == CSRF
    assert r.headers["content-type"] == "application/json"


async def test_csrf_match_and_mismatch():
    c = csrf_app("cookie")
    h = {**cookies(**{"__Host-auth_csrf": " tok "}), "x-csrf-token": " tok"}
    assert (await c.post("/x", headers=h)).status_code == 200
    h["x-csrf-token"] = "other"
    assert (await c.post("/x", headers=h)).content == CSRF


async def test_csrf_methods():
    c = csrf_app("cookie")
    for m in ("GET", "HEAD", "OPTIONS"):
        assert (await c.request(m, "/x")).status_code in (200, 405)
    trace = csrf_app("cookie")
    assert (await trace.request("TRACE", "/x")).status_code != 403
    for m in ("POST", "PUT", "PATCH", "DELETE", "post"):
        assert (await c.request(m, "/x")).status_code == 403


async def test_csrf_cookie_authentication_rules():
    ck = cookies(**{"__Host-auth_access": "a"})
    assert (await csrf_app().post("/x", headers=ck)).status_code == 403
    assert (await csrf_app().post("/x", headers={**ck, "Authorization": "Bearer t"})
            ).status_code == 200
    assert (await csrf_app().post("/x", headers={**ck, "Authorization": "Basic t"})
            ).status_code == 403
    assert (await csrf_app("authorization").post("/x", headers=ck)).status_code == 200
    assert (await csrf_app().post("/x")).status_code == 200
    assert (await csrf_app().post("/x", headers=cookies(**{"__Host-auth_access": " "}))
            ).status_code == 200


async def test_csrf_wrong_order_fails_closed(fake):
    app = echo_app()
    app.add_middleware(JWTAuthMiddleware, auth_base_url="x", expected_audience=AUD,
                       auth_client=fake.client(), token_sources=["cookie"])
    app.add_middleware(CookieCSRFMiddleware)
    c = asgi_client(app)
    r = await c.post("/x", headers=cookies(**{"__Host-auth_access": mint(user_claims()),
                                              "__Host-auth_csrf": "t"}))
    assert r.status_code == 403 and r.content == CSRF


def test_csrf_constructor():
    params = inspect.signature(CookieCSRFMiddleware).parameters
    for n in ("csrf_cookie_name", "csrf_header_name", "access_cookie_name"):
        assert params[n].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["csrf_cookie_name"].default == "__Host-auth_csrf"
    assert params["csrf_header_name"].default == "X-CSRF-Token"
    for n in ("csrf_cookie_name", "csrf_header_name", "access_cookie_name"):
        with pytest.raises(ValueError) as ei:
            CookieCSRFMiddleware(echo_app(), **{n: "  "})
        assert str(ei.value) == f"{n} must be non-empty."


async def test_csrf_non_ascii_403():
    c = csrf_app("cookie")
    h = [(b"cookie", "__Host-auth_csrf=\u00e4bc".encode("utf-8")),
         (b"x-csrf-token", "\u00e4bc".encode("latin-1"))]
    r = await c.post("/x", headers=h)
    assert r.status_code == 403 and r.content == CSRF


async def test_csrf_origin_allowlist():
    c = csrf_app("cookie", allowed_origins=["https://app.example.com"])
    h = {**cookies(**{"__Host-auth_csrf": "t"}), "x-csrf-token": "t"}
    assert (await c.post("/x", headers={**h, "Origin": "https://app.example.com"})
            ).status_code == 200
    assert (await c.post("/x", headers={**h, "Origin": "https://evil.example"})
            ).status_code == 403
