"""1.6.0 additions that default to 1.5.2 behaviour (sdk.md §5, §8, §10,
§12): expected_issuer, auto_error, get_current_identity, require_scopes and
SyncAuthClient."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from sdk_testlib import AUD, BASE, FakeAuthd, asgi_client, compact, m2m_claims, mint, \
    user_claims
from sdk.client import SyncAuthClient
from sdk.dependencies import get_current_identity, require_scopes
from sdk.exceptions import JWTVerificationError
from sdk.middleware import JWTAuthMiddleware

INVALID = compact("Invalid token.", "invalid_token")


def app_with(fake: FakeAuthd, **kw) -> httpx.AsyncClient:
    app = FastAPI()

    @app.get("/any")
    async def any_identity(identity=Depends(get_current_identity)):
        return identity

    @app.get("/scoped")
    async def scoped(identity=Depends(require_scopes("billing:read"))):
        return {"ok": True}

    @app.get("/open")
    async def open_route(request: Request):
        return {"user": getattr(request.state, "user", None)}

    app.add_middleware(JWTAuthMiddleware, auth_base_url="http://ignored",
                       auth_client=fake.client(), expected_audience=AUD, **kw)
    return asgi_client(app)


def bearer(t: str) -> dict:
    return {"Authorization": f"Bearer {t}"}


async def test_expected_issuer_default_ignores_iss(fake):
    c = app_with(fake)
    r = await c.get("/open", headers=bearer(mint(user_claims(iss="https://elsewhere"))))
    assert r.status_code == 200, r.text


async def test_expected_issuer_checked_when_set(fake):
    c = app_with(fake, expected_issuer="https://auth.example.com")
    ok = await c.get("/open", headers=bearer(mint(user_claims(iss="https://auth.example.com"))))
    assert ok.status_code == 200, ok.text
    for iss in ("https://elsewhere", None, 5):
        claims = user_claims(iss=iss) if iss is not None else user_claims()
        r = await c.get("/open", headers=bearer(mint(claims)))
        assert r.status_code == 401 and r.content == INVALID, iss


async def test_auto_error_false_lets_anonymous_through(fake):
    c = app_with(fake, auto_error=False)
    r = await c.get("/open")
    assert r.status_code == 200 and r.json() == {"user": None}
    assert fake.calls["jwks"] == 0 and fake.calls["validate"] == 0
    # a bad token is still refused
    r = await c.get("/open", headers=bearer("garbage"))
    assert r.status_code == 401 and r.content == INVALID
    # the default refuses the anonymous request
    r = await app_with(FakeAuthd()).get("/open")
    assert r.status_code == 401


async def test_get_current_identity_accepts_users_and_services(fake):
    c = app_with(fake)
    r = await c.get("/any", headers=bearer(mint(user_claims(sub="u-1"))))
    assert r.status_code == 200 and r.json()["type"] == "user"
    r = await c.get("/any", headers=bearer(mint(m2m_claims(sub="client_x"))))
    assert r.status_code == 200 and r.json()["type"] == "service"
    r = await app_with(fake, auto_error=False).get("/any")
    assert r.status_code == 401


async def test_require_scopes(fake):
    c = app_with(fake)
    r = await c.get("/scoped", headers=bearer(mint(m2m_claims(scope="billing:read x"))))
    assert r.status_code == 200, r.text
    r = await c.get("/scoped", headers=bearer(mint(m2m_claims(scope="billing:write"))))
    assert r.status_code == 403 and r.json() == {"detail": "Insufficient scope"}
    r = await c.get("/scoped", headers=bearer(mint(user_claims(scopes=["billing:read"]))))
    assert r.status_code == 200
    r = await c.get("/scoped", headers=bearer(mint(user_claims(scopes=[]))))
    assert r.status_code == 403


def sync_client(fake: FakeAuthd) -> SyncAuthClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return fake.handler(request)
    return SyncAuthClient(BASE, http_client=httpx.Client(base_url=BASE,
                                                         transport=httpx.MockTransport(handler)))


def test_sync_client_mirrors_async(fake):
    with sync_client(fake) as c:
        assert c.fetch_jwks()["keys"][0]["kid"] == "k1"
        c.validate_access_token_session("tok")
        got = c.introspect_api_key("sk_x")
        assert got["valid"] is True and got["key_id"] == "key-1"
    assert fake.calls == {"jwks": 1, "validate": 1, "introspect": 1}
    v = [r for r in fake.requests if r.url.path == "/auth/validate"][0]
    assert v.headers["authorization"] == "Bearer tok"


def test_sync_client_error_mapping(fake):
    fake.validate = lambda req: httpx.Response(401, json={"detail": "Session expired.",
                                                          "code": "session_expired"})
    with sync_client(fake) as c:
        with pytest.raises(JWTVerificationError) as e:
            c.validate_access_token_session("tok")
        assert e.value.code == "session_expired"


async def test_retries_on_connect_errors_and_5xx(fake):
    """retries=N retries GETs (JWKS, validate) on connect errors and 502/503/504;
    introspection only with retry_introspect=True; the default sends once."""
    from sdk.client import AuthClient
    from sdk.exceptions import AuthServiceUnavailableError
    seq = iter([httpx.Response(503), httpx.Response(502), httpx.Response(204)])
    fake.validate = lambda req: next(seq)
    http = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(fake.handler))
    await AuthClient(BASE, http_client=http, retries=2).validate_access_token_session("t")
    assert fake.calls["validate"] == 3
    # default: one request, the 503 is an outage
    fake.validate = lambda req: httpx.Response(503)
    with pytest.raises(AuthServiceUnavailableError):
        await AuthClient(BASE, http_client=http).validate_access_token_session("t")
    assert fake.calls["validate"] == 4
    # introspection is not retried unless asked
    fake.introspect = lambda req: httpx.Response(503)
    with pytest.raises(AuthServiceUnavailableError):
        await AuthClient(BASE, http_client=http, retries=2).introspect_api_key("sk_x")
    assert fake.calls["introspect"] == 1
    with pytest.raises(AuthServiceUnavailableError):
        await AuthClient(BASE, http_client=http, retries=2,
                         retry_introspect=True).introspect_api_key("sk_x")
    assert fake.calls["introspect"] == 4


async def test_hmac_cache_keys_still_cache(fake):
    """hmac_cache_keys keys the caches by a salted HMAC: same behaviour (one
    introspection for repeated use), and the raw key's plain SHA-256 never
    appears among the cache keys."""
    import hashlib

    from sdk.middleware import APIKeyAuthMiddleware
    app = FastAPI()

    @app.get("/k")
    async def k(request: Request):
        return {"user": request.state.user}

    mw_holder = {}

    class Probe(APIKeyAuthMiddleware):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            mw_holder["mw"] = self

    app.add_middleware(Probe, auth_base_url="http://ignored", auth_client=fake.client(),
                       hmac_cache_keys=True)
    c = asgi_client(app)
    for _ in range(3):
        r = await c.get("/k", headers={"X-API-Key": "sk_secret"})
        assert r.status_code == 200, r.text
    assert fake.calls["introspect"] == 1
    mw = mw_holder["mw"]
    plain = hashlib.sha256(b"sk_secret").hexdigest()
    assert mw._cache_key("sk_secret") != plain
    assert mw._cache_key("sk_secret") == mw._cache_key("sk_secret")
