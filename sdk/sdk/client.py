"""HTTP client for the three authd endpoints the SDK uses (sdk.md §2, §5).

Create **one** `AuthClient` per process, pass it to every middleware and
dependency, and close it in the application lifespan (`await client.aclose()`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import httpx

from .exceptions import AuthServiceResponseError, AuthServiceUnavailableError, JWTVerificationError
from .types import JWKS, APIKeyIntrospectionResponse

__all__ = ["AuthClient", "SyncAuthClient", "DEFAULT_TIMEOUT", "DEFAULT_LIMITS"]

DEFAULT_TIMEOUT = httpx.Timeout(connect=2.0, read=5.0, write=5.0, pool=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

JWKS_PATH = ".well-known/jwks.json"
VALIDATE_PATH = "auth/validate"
INTROSPECT_PATH = "auth/introspect"

_API_KEY_CODES = ("invalid_api_key", "expired_api_key", "revoked_api_key")
_RETRY_STATUSES = (502, 503, 504)
_RETRY_DEADLINE_SECONDS = 2.0


def _timeout_of(timeout: httpx.Timeout | float | None) -> httpx.Timeout:
    if not timeout:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(float(timeout))


def _base_of(base_url: str) -> str:
    return str(base_url).rstrip("/")


# -- response interpretation (shared by the async and the sync client) -------


def _json_object(resp: httpx.Response) -> dict[str, Any]:
    try:
        payload = json.loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        raise AuthServiceResponseError("Auth service returned invalid JSON.", resp.status_code)
    if not isinstance(payload, dict):
        raise AuthServiceResponseError("Auth service returned invalid JSON object.",
                                       resp.status_code)
    return payload


def _check_status(resp: httpx.Response) -> None:
    if resp.status_code >= 500:
        raise AuthServiceUnavailableError("Auth service unavailable.")
    if resp.status_code >= 400:
        raise AuthServiceResponseError(
            f"Auth service request failed with status {resp.status_code}.", resp.status_code)


def _parse_jwks(resp: httpx.Response) -> JWKS:
    _check_status(resp)
    payload = _json_object(resp)
    keys = payload.get("keys")
    if not isinstance(keys, list):
        raise AuthServiceResponseError("Invalid JWKS response payload.", resp.status_code)
    out: list[dict[str, str]] = []
    for key in keys:
        if not isinstance(key, dict):
            raise AuthServiceResponseError("Invalid JWKS key entry.", resp.status_code)
        out.append({str(k): str(v) for k, v in key.items()})
    return {"keys": out}


def _parse_introspection(resp: httpx.Response) -> APIKeyIntrospectionResponse:
    _check_status(resp)
    payload = _json_object(resp)
    valid = payload.get("valid")
    if not isinstance(valid, bool):
        raise AuthServiceResponseError("Invalid introspection response payload.",
                                       resp.status_code)
    if not valid:
        code = payload.get("code")
        code = str(code) if code is not None else "invalid_api_key"
        if code not in _API_KEY_CODES:
            code = "invalid_api_key"
        return {"valid": False, "code": code}  # type: ignore[typeddict-item]
    scopes = payload.get("scopes")
    user_id = payload.get("user_id")
    key_id = payload.get("key_id")
    expires_at = payload.get("expires_at")
    result: dict[str, Any] = {
        "valid": True,
        "user_id": str(user_id) if user_id is not None else None,
        "scopes": [str(s) for s in scopes] if isinstance(scopes, list) else [],
        "key_id": str(key_id) if key_id is not None else "",
        "expires_at": str(expires_at) if expires_at is not None else None,
    }
    if payload.get("service") is not None:
        result["service"] = str(payload["service"])
    return result  # type: ignore[return-value]


def _parse_validate(resp: httpx.Response) -> None:
    status = resp.status_code
    if status == 204:
        return None
    if status >= 500:
        raise AuthServiceUnavailableError("Auth service unavailable.")
    if status in (401, 403):
        body = _json_object(resp)
        detail = body.get("detail")
        code = body.get("code")
        raise JWTVerificationError(str(detail) if detail is not None else "Invalid token.",
                                   str(code) if code is not None else "invalid_token")
    raise AuthServiceResponseError(f"Auth service request failed with status {status}.", status)


def _backoff() -> float:
    return random.uniform(0.05, 0.2)


class AuthClient:
    """Async client for authd.

    `http_client`, when given, is used as-is (its own base URL, transport and
    timeouts) and is never closed by this object; `base_url` and `timeout` are
    then ignored. `retries` (default 0 = one request per call) retries GET
    requests (JWKS and validate) on connect errors and 502/503/504 with a
    jittered 50-200 ms backoff inside a 2 s deadline; `retry_introspect=True`
    extends that to the introspection POST.
    """

    def __init__(self, base_url: str, timeout: httpx.Timeout | float | None = None,
                 http_client: httpx.AsyncClient | None = None, *, retries: int = 0,
                 retry_introspect: bool = False,
                 limits: httpx.Limits | None = None) -> None:
        self.base_url = _base_of(base_url)
        self.timeout = _timeout_of(timeout)
        self.retries = max(0, int(retries))
        self.retry_introspect = retry_introspect
        if http_client is not None:
            self._client = http_client
            self._owns_client = False
        else:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout,
                                             limits=limits or DEFAULT_LIMITS,
                                             follow_redirects=False)
            self._owns_client = True

    @property
    def http_client(self) -> httpx.AsyncClient:
        return self._client

    @property
    def owns_http_client(self) -> bool:
        return self._owns_client

    async def aclose(self) -> None:
        """Closes the owned HTTP client; an injected one is left open."""
        if self._owns_client and not self._client.is_closed:
            await self._client.aclose()

    async def __aenter__(self) -> "AuthClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, method: str, path: str, retry: bool, **kw: Any) -> httpx.Response:
        attempts = 1 + (self.retries if retry else 0)
        deadline = time.monotonic() + _RETRY_DEADLINE_SECONDS
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = await self._client.request(method, path, follow_redirects=False, **kw)
            except httpx.ConnectError:
                if last or time.monotonic() >= deadline:
                    raise AuthServiceUnavailableError("Auth service unavailable.")
            except (httpx.HTTPError, httpx.InvalidURL):
                raise AuthServiceUnavailableError("Auth service unavailable.")
            else:
                if resp.status_code not in _RETRY_STATUSES or last \
                        or time.monotonic() >= deadline:
                    return resp
            await asyncio.sleep(_backoff())
        raise AuthServiceUnavailableError("Auth service unavailable.")  # pragma: no cover

    async def fetch_jwks(self) -> JWKS:
        return _parse_jwks(await self._send("GET", JWKS_PATH, True))

    async def introspect_api_key(self, raw_api_key: str) -> APIKeyIntrospectionResponse:
        resp = await self._send("POST", INTROSPECT_PATH, self.retry_introspect,
                                json={"api_key": raw_api_key})
        return _parse_introspection(resp)

    async def validate_access_token_session(self, raw_token: str) -> None:
        resp = await self._send("GET", VALIDATE_PATH, True,
                                headers={"authorization": f"Bearer {raw_token}"})
        return _parse_validate(resp)


class SyncAuthClient:
    """Blocking twin of `AuthClient` on `httpx.Client`, for scripts, workers
    and WSGI apps. Same methods, same error mapping."""

    def __init__(self, base_url: str, timeout: httpx.Timeout | float | None = None,
                 http_client: httpx.Client | None = None, *, retries: int = 0,
                 retry_introspect: bool = False,
                 limits: httpx.Limits | None = None) -> None:
        self.base_url = _base_of(base_url)
        self.timeout = _timeout_of(timeout)
        self.retries = max(0, int(retries))
        self.retry_introspect = retry_introspect
        if http_client is not None:
            self._client = http_client
            self._owns_client = False
        else:
            self._client = httpx.Client(base_url=self.base_url, timeout=self.timeout,
                                        limits=limits or DEFAULT_LIMITS, follow_redirects=False)
            self._owns_client = True

    def close(self) -> None:
        if self._owns_client and not self._client.is_closed:
            self._client.close()

    def __enter__(self) -> "SyncAuthClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, retry: bool, **kw: Any) -> httpx.Response:
        attempts = 1 + (self.retries if retry else 0)
        deadline = time.monotonic() + _RETRY_DEADLINE_SECONDS
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self._client.request(method, path, follow_redirects=False, **kw)
            except httpx.ConnectError:
                if last or time.monotonic() >= deadline:
                    raise AuthServiceUnavailableError("Auth service unavailable.")
            except (httpx.HTTPError, httpx.InvalidURL):
                raise AuthServiceUnavailableError("Auth service unavailable.")
            else:
                if resp.status_code not in _RETRY_STATUSES or last \
                        or time.monotonic() >= deadline:
                    return resp
            time.sleep(_backoff())
        raise AuthServiceUnavailableError("Auth service unavailable.")  # pragma: no cover

    def fetch_jwks(self) -> JWKS:
        return _parse_jwks(self._send("GET", JWKS_PATH, True))

    def introspect_api_key(self, raw_api_key: str) -> APIKeyIntrospectionResponse:
        return _parse_introspection(self._send("POST", INTROSPECT_PATH, self.retry_introspect,
                                               json={"api_key": raw_api_key}))

    def validate_access_token_session(self, raw_token: str) -> None:
        return _parse_validate(self._send("GET", VALIDATE_PATH, True,
                                          headers={"authorization": f"Bearer {raw_token}"}))
