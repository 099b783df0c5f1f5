"""AuthClient and JWKSCacheManager (sdk.md §5, §7; §16 items 5-16)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sdk_testlib import BASE
from sdk.cache import JWKSCacheManager
from sdk.client import DEFAULT_TIMEOUT, AuthClient
from sdk.exceptions import AuthServiceResponseError, AuthServiceUnavailableError, JWTVerificationError


def client_for(handler) -> AuthClient:
    return AuthClient(BASE, http_client=httpx.AsyncClient(
        base_url=BASE, transport=httpx.MockTransport(handler)))


def responding(resp, seen=None):
    def h(req):
        if seen is not None:
            seen.append(req)
        if resp == "down":
            raise httpx.ConnectError("down", request=req)
        return resp() if callable(resp) else resp
    return client_for(h)


async def test_fetch_jwks_stringifies_and_drops():
    c = responding(httpx.Response(200, json={"keys": [{"kid": 7, "x": True}], "other": 1}))
    assert await c.fetch_jwks() == {"keys": [{"kid": "7", "x": "True"}]}
    c = responding(httpx.Response(200, json={"keys": []}))
    assert await c.fetch_jwks() == {"keys": []}


@pytest.mark.parametrize("resp", [
    httpx.Response(200, json={"not_keys": []}), httpx.Response(200, json={"keys": {}}),
    httpx.Response(200, json={"keys": [1]}), httpx.Response(200, content=b"<html>"),
    httpx.Response(200, json=[1])])
async def test_fetch_jwks_bad_payloads(resp):
    with pytest.raises(AuthServiceResponseError):
        await responding(resp).fetch_jwks()


async def test_error_mapping_all_methods():
    for resp, exc, status in [("down", AuthServiceUnavailableError, None),
                              (httpx.Response(500), AuthServiceUnavailableError, None),
                              (httpx.Response(404), AuthServiceResponseError, 404)]:
        c = responding(resp)
        for call in (c.fetch_jwks(), c.introspect_api_key("k"),
                     c.validate_access_token_session("t")):
            with pytest.raises(exc) as ei:
                await call
            if status:
                assert ei.value.status_code == status


async def test_introspect_request_and_normalisation():
    seen = []
    c = responding(httpx.Response(200, json={"valid": True, "user_id": 5, "scopes": ["a", 1],
                                             "key_id": 9, "expires_at": None,
                                             "service": "svc"}), seen)
    assert await c.introspect_api_key("sk_x") == {
        "valid": True, "user_id": "5", "scopes": ["a", "1"], "key_id": "9",
        "expires_at": None, "service": "svc"}
    assert seen[0].method == "POST" and seen[0].url.path == "/auth/introspect"
    assert seen[0].content == b'{"api_key": "sk_x"}' or \
        __import__("json").loads(seen[0].content) == {"api_key": "sk_x"}
    c = responding(httpx.Response(200, json={"valid": True, "scopes": "x"}))
    assert await c.introspect_api_key("k") == {"valid": True, "user_id": None, "scopes": [],
                                               "key_id": "", "expires_at": None}


async def test_introspect_invalid_codes():
    for code, want in [("revoked_api_key", "revoked_api_key"), ("weird", "invalid_api_key"),
                       (None, "invalid_api_key")]:
        c = responding(httpx.Response(200, json={"valid": False, "code": code}))
        assert await c.introspect_api_key("k") == {"valid": False, "code": want}
    with pytest.raises(AuthServiceResponseError):
        await responding(httpx.Response(200, json={"valid": "yes"})).introspect_api_key("k")


async def test_validate_outcomes():
    seen = []
    assert await responding(httpx.Response(204), seen).validate_access_token_session("t") is None
    assert seen[0].headers["authorization"] == "Bearer t"
    for body, detail, code in [({"detail": "D", "code": "c"}, "D", "c"),
                               ({}, "Invalid token.", "invalid_token")]:
        for status in (401, 403):
            with pytest.raises(JWTVerificationError) as ei:
                await responding(httpx.Response(status, json=body)).validate_access_token_session("t")
            assert (ei.value.detail, ei.value.code) == (detail, code)
    for resp in (httpx.Response(401, content=b"x"), httpx.Response(200, json={}),
                 httpx.Response(302), httpx.Response(429)):
        with pytest.raises(AuthServiceResponseError):
            await responding(resp).validate_access_token_session("t")


async def test_ownership_and_context_manager():
    injected = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(204)))
    c = AuthClient(BASE, http_client=injected)
    await c.aclose()
    assert not injected.is_closed
    owned = AuthClient(BASE)
    await owned.aclose()
    assert owned.http_client.is_closed
    async with AuthClient(BASE) as c2:
        pass
    assert c2.http_client.is_closed


def test_timeouts_and_base_url():
    assert DEFAULT_TIMEOUT == httpx.Timeout(connect=2.0, read=5.0, write=5.0, pool=5.0)
    assert AuthClient(BASE).http_client.timeout == DEFAULT_TIMEOUT
    assert AuthClient(BASE, timeout=0).http_client.timeout == DEFAULT_TIMEOUT
    assert AuthClient(BASE, timeout=3.5).http_client.timeout == httpx.Timeout(3.5)
    c = AuthClient("https://app.example.com/_auth//")
    assert c.base_url == "https://app.example.com/_auth"
    req = c.http_client.build_request("GET", "auth/validate")
    assert str(req.url) == "https://app.example.com/_auth/auth/validate"


async def test_path_prefix_used_for_requests():
    seen = []
    c = AuthClient("http://h/_auth/", http_client=None)
    await c.aclose()
    c = AuthClient("x", http_client=httpx.AsyncClient(
        base_url="http://h/_auth", transport=httpx.MockTransport(
            lambda r: seen.append(r) or httpx.Response(200, json={"keys": []}))))
    await c.fetch_jwks()
    assert seen[0].url.path == "/_auth/.well-known/jwks.json"


async def test_retries_option():
    n = []

    def h(req):
        n.append(1)
        return httpx.Response(503) if len(n) < 3 else httpx.Response(204)
    c = client_for(h)
    with pytest.raises(AuthServiceUnavailableError):
        await c.validate_access_token_session("t")
    assert len(n) == 1
    c.retries = 2
    assert await c.validate_access_token_session("t") is None
    assert len(n) == 3


# --- JWKSCacheManager ------------------------------------------------------------

class Stub:
    def __init__(self):
        self.n = 0
        self.fail = False

    async def fetch_jwks(self):
        self.n += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise AuthServiceUnavailableError("Auth service unavailable.")
        return {"keys": [{"kid": str(self.n)}]}


async def test_cache_hit_within_ttl():
    s = Stub()
    m = JWKSCacheManager(s)
    assert await m.get_jwks() == await m.get_jwks()
    assert s.n == 1


async def test_cache_expiry_boundary_and_forced():
    s, t = Stub(), [100.0]
    m = JWKSCacheManager(s, ttl_seconds=300, now=lambda: t[0])
    await m.get_jwks()
    t[0] = 399.999
    await m.get_jwks()
    assert s.n == 1
    t[0] = 400.0
    await m.get_jwks()
    assert s.n == 2
    await m.get_jwks(force_refresh=True)
    assert s.n == 3


async def test_cold_single_flight_and_forced_serial():
    s = Stub()
    m = JWKSCacheManager(s)
    await asyncio.gather(*(m.get_jwks() for _ in range(20)))
    assert s.n == 1
    await asyncio.gather(*(m.get_jwks(force_refresh=True) for _ in range(20)))
    assert s.n == 21
    g = m.generation
    await asyncio.gather(*(m.get_jwks(force_refresh=True, seen_generation=g)
                           for _ in range(20)))
    assert s.n == 22


async def test_failed_fetch_propagates_no_stale():
    s, t = Stub(), [0.0]
    m = JWKSCacheManager(s, ttl_seconds=10, now=lambda: t[0])
    await m.get_jwks()
    t[0] = 11
    s.fail = True
    with pytest.raises(AuthServiceUnavailableError):
        await m.get_jwks()
    with pytest.raises(AuthServiceUnavailableError):
        await m.get_jwks()
    assert s.n == 3
    s.fail = False
    assert (await m.get_jwks())["keys"][0]["kid"] == "4"


async def test_stale_if_error_and_refresh_ahead():
    s, t = Stub(), [0.0]
    m = JWKSCacheManager(s, ttl_seconds=100, now=lambda: t[0], stale_if_error_seconds=50)
    first = await m.get_jwks()
    s.fail = True
    t[0] = 140
    assert await m.get_jwks() == first
    t[0] = 151
    with pytest.raises(AuthServiceUnavailableError):
        await m.get_jwks()
    s2, t2 = Stub(), [0.0]
    m2 = JWKSCacheManager(s2, ttl_seconds=100, now=lambda: t2[0], refresh_ahead=True)
    await m2.get_jwks()
    t2[0] = 95
    await m2.get_jwks()
    await asyncio.sleep(0.05)
    assert s2.n == 2
