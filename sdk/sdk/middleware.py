"""ASGI middlewares: JWT, API key and cookie CSRF (sdk.md §9-§11).

All three are pure ASGI, so WebSocket connections are authenticated too (a
rejected WebSocket is closed with code 1008 before it is accepted). Each still
has a public `async dispatch(request, call_next)` that runs the same checks on
a Starlette `Request`.

Recommended wiring: create one `AuthClient`, pass it to every middleware and
dependency, and close it in the app lifespan. A middleware that had to create
its own client closes it when it sees the lifespan shutdown.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import time
from typing import Any, Awaitable, Callable, Iterable

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .cache import JWKSCacheManager, TTLCache, single_flight
from .client import AuthClient
from .exceptions import AuthServiceResponseError, AuthServiceUnavailableError, JWTVerificationError
from .jwt_utils import (MAX_TOKEN_LENGTH, RS256Verifier, VerificationFailure,
                        normalize_audiences, raise_as)

__all__ = ["JWTAuthMiddleware", "APIKeyAuthMiddleware", "CookieCSRFMiddleware"]

ROLES = ("admin", "user", "service")
USER_TOKEN_TYPES = frozenset({"access", "refresh", "m2m"})
_ACCEPTED_BY_REQUIRED_TYPE = {
    "access": frozenset({"access", "m2m"}),
    "m2m": frozenset({"m2m"}),
    "refresh": frozenset({"refresh"}),
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

UNAVAILABLE = ("Auth service unavailable.", "session_expired")
INVALID_TOKEN = ("Invalid token.", "invalid_token")
API_KEY_ERRORS = {
    "invalid_api_key": "Invalid API key.",
    "expired_api_key": "API key expired.",
    "revoked_api_key": "API key revoked.",
}
CSRF_BODY = b'{"detail":"Invalid CSRF token.","code":"invalid_csrf_token"}'


def error_response(status: int, detail: str, code: str,
                   headers: dict[str, str] | None = None) -> Response:
    """The middleware error format: compact `{"detail","code"}` JSON."""
    body = json.dumps({"detail": detail, "code": code}, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _split_scheme(value: str | None) -> tuple[str, str] | None:
    """`Authorization` parsing: strip, split at the first ASCII space."""
    if not value:
        return None
    value = value.strip()
    scheme, sep, rest = value.partition(" ")
    if not sep:
        return None
    return scheme, rest.strip()


def bearer_token(conn: HTTPConnection) -> str | None:
    parts = _split_scheme(conn.headers.get("authorization"))
    if parts is None or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


def _const_eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"),
                               b.encode("utf-8", "surrogatepass"))


def _path_excluded(path: str, exclude_paths: tuple[str, ...]) -> bool:
    for p in exclude_paths:
        if p.endswith("*"):
            if path.startswith(p[:-1]):
                return True
        elif path == p:
            return True
    return False


class _ASGIMiddleware:
    """Shared ASGI plumbing: `_authenticate(conn)` returns an error Response or
    None (after writing `conn.state`)."""

    app: ASGIApp

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._owned_clients: list[Any] = []

    async def _authenticate(self, conn: HTTPConnection) -> Response | None:  # pragma: no cover
        raise NotImplementedError

    def _skip(self, conn: HTTPConnection) -> bool:
        return False

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not self._skip(request):
            error = await self._authenticate(request)
            if error is not None:
                return error
        return await call_next(request)

    async def _close_owned(self) -> None:
        for client in self._owned_clients:
            try:
                await client.aclose()
            except Exception:
                pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan" and self._owned_clients:
            async def send_wrapper(message: Message) -> None:
                if message["type"] in ("lifespan.shutdown.complete",
                                       "lifespan.shutdown.failed"):
                    await self._close_owned()
                await send(message)
            await self.app(scope, receive, send_wrapper)
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = Request(scope, receive) if kind == "http" else HTTPConnection(scope, receive)
        if not self._skip(conn):
            error = await self._authenticate(conn)
            if error is not None:
                if kind == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await error(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------


class JWTAuthMiddleware(_ASGIMiddleware):
    """Verifies authd JWTs locally and checks user sessions at authd.

    On success `request.state.user` is the identity dict and
    `request.state.auth_transport` is `"authorization"` or `"cookie"`.

    Options added in 1.6.0 (defaults keep 1.5.2 behaviour, except
    `leeway_seconds`, which is 5 s for `iat` only, matching authd):

    * `leeway_seconds`: clock-skew allowance for `iat` (never for `exp`/`nbf`).
    * `expected_issuer`: check `iss` when set.
    * `jwks_refresh_on_any_failure` (True): False refreshes the JWKS only for
      an unknown kid or a failed signature, so expired/garbage tokens cost no
      JWKS request and answer 401 (not 503) during an authd outage.
    * `session_cache_ttl_seconds` (0 = off) / `session_cache_maxsize`: short
      cache of `/auth/validate` outcomes (a revocation is seen up to TTL late).
    * `exclude_paths` (exact, or prefix ending in `*`) / `exclude_methods`.
    * `auto_error` (True): False lets requests without any token through
      unauthenticated (no `request.state.user`); a bad token is still 401.
    * `error_headers` (False): add `WWW-Authenticate: Bearer` to 401s and
      `Retry-After` to 503s.

    Note: `required_token_type="refresh"` is unusable against authd, whose
    `/auth/validate` accepts access tokens only (decision R14).
    """

    def __init__(self, app: ASGIApp, auth_base_url: str, expected_audience: str | list[str],
                 auth_client: AuthClient | None = None,
                 jwks_cache: JWKSCacheManager | None = None,
                 required_token_type: str = "access",
                 token_sources: list[str] | None = None,
                 access_cookie_name: str = "__Host-auth_access",
                 *,
                 leeway_seconds: float = 5,
                 expected_issuer: str | None = None,
                 jwks_refresh_on_any_failure: bool = True,
                 session_cache_ttl_seconds: float = 0,
                 session_cache_maxsize: int = 10000,
                 exclude_paths: Iterable[str] | None = None,
                 exclude_methods: Iterable[str] | None = None,
                 auto_error: bool = True,
                 error_headers: bool = False) -> None:
        super().__init__(app)
        self.expected_audiences = normalize_audiences(expected_audience)
        if not self.expected_audiences:
            raise ValueError("expected_audience must be non-empty.")
        sources: list[str] = []
        for entry in token_sources or ["authorization"]:
            s = str(entry).strip().lower()
            if s not in ("authorization", "cookie"):
                raise ValueError("token_sources entries must be 'authorization' or 'cookie'.")
            if s not in sources:
                sources.append(s)
        self.token_sources = sources
        cookie = str(access_cookie_name or "").strip()
        if not cookie:
            raise ValueError("access_cookie_name must be non-empty.")
        self.access_cookie_name = cookie
        self.auth_base_url = auth_base_url
        if auth_client is None:
            auth_client = AuthClient(base_url=auth_base_url)
            self._owned_clients.append(auth_client)
        self.auth_client = auth_client
        self.jwks_cache = jwks_cache if jwks_cache is not None else JWKSCacheManager(
            auth_client, ttl_seconds=300)
        self.required_token_type = required_token_type
        if not required_token_type:
            self._allowed_types = USER_TOKEN_TYPES
        else:
            self._allowed_types = _ACCEPTED_BY_REQUIRED_TYPE.get(required_token_type,
                                                                 frozenset())
        self.verifier = RS256Verifier(leeway_seconds=leeway_seconds,
                                      expected_issuer=expected_issuer)
        self.jwks_refresh_on_any_failure = jwks_refresh_on_any_failure
        self.session_cache_ttl_seconds = session_cache_ttl_seconds
        self._session_cache: TTLCache[tuple[str, str] | None] = TTLCache(session_cache_maxsize)
        self._session_inflight: dict[str, Any] = {}
        self.exclude_paths = tuple(exclude_paths or ())
        self.exclude_methods = frozenset(m.upper() for m in (exclude_methods or ()))
        self.auto_error = auto_error
        self.error_headers = error_headers

    # -- helpers ----------------------------------------------------------
    def _skip(self, conn: HTTPConnection) -> bool:
        if self.exclude_methods and conn.scope["type"] == "http" \
                and str(conn.scope.get("method", "")).upper() in self.exclude_methods:
            return True
        return bool(self.exclude_paths) and _path_excluded(conn.url.path, self.exclude_paths)

    def _error(self, status: int, detail: str, code: str) -> Response:
        headers = None
        if self.error_headers:
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "5"}
        return error_response(status, detail, code, headers)

    def extract_token(self, conn: HTTPConnection) -> tuple[str, str] | None:
        """(token, transport) from the configured sources, or None."""
        for source in self.token_sources:
            if source == "authorization":
                token = bearer_token(conn)
            else:
                token = (conn.cookies.get(self.access_cookie_name) or "").strip() or None
            if token:
                return token, source
        return None

    async def verify_token(self, token: str) -> dict[str, Any]:
        """The §8 pipeline with at most one forced JWKS refresh. Raises
        JWTVerificationError, AuthServiceUnavailableError or AuthServiceResponseError."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise JWTVerificationError(*INVALID_TOKEN)
        cache = self.jwks_cache
        jwks = await cache.get_jwks()
        generation = getattr(cache, "generation", None)
        try:
            return self.verifier.verify(token, jwks, audiences=self.expected_audiences,
                                        allowed_types=self._allowed_types)
        except VerificationFailure as failure:
            if not (self.jwks_refresh_on_any_failure or failure.key_related):
                raise raise_as(failure)
        if isinstance(cache, JWKSCacheManager):
            jwks = await cache.get_jwks(force_refresh=True, seen_generation=generation)
        else:
            jwks = await cache.get_jwks(force_refresh=True)
        try:
            return self.verifier.verify(token, jwks, audiences=self.expected_audiences,
                                        allowed_types=self._allowed_types)
        except VerificationFailure as failure:
            raise raise_as(failure)

    async def _validate_session(self, token: str, claims: dict[str, Any]) -> None:
        if self.session_cache_ttl_seconds <= 0:
            await self.auth_client.validate_access_token_session(token)
            return
        key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        cached = self._session_cache.get(key)
        if cached is None:
            async def call() -> tuple[str, str] | None:
                try:
                    await self.auth_client.validate_access_token_session(token)
                    outcome: tuple[str, str] | None = ("", "")
                except JWTVerificationError as exc:
                    outcome = (exc.detail, exc.code)
                exp = claims.get("exp")
                ttl = self.session_cache_ttl_seconds
                if isinstance(exp, (int, float)):
                    ttl = min(ttl, exp - time.time())
                self._session_cache.set(key, outcome, ttl)
                return outcome
            cached = await single_flight(self._session_inflight, key, call)
        if cached and cached != ("", ""):
            raise JWTVerificationError(*cached)

    # -- the request flow ---------------------------------------------------
    async def _authenticate(self, conn: HTTPConnection) -> Response | None:
        found = self.extract_token(conn)
        if found is None:
            if not self.auto_error:
                return None
            return self._error(401, *INVALID_TOKEN)
        token, transport = found
        try:
            claims = await self.verify_token(token)
        except JWTVerificationError as exc:
            return self._error(401, exc.detail, exc.code)
        except (AuthServiceUnavailableError, AuthServiceResponseError):
            return self._error(503, *UNAVAILABLE)
        role = claims.get("role")
        if not isinstance(role, str) or role not in ROLES:
            return self._error(401, *INVALID_TOKEN)
        if claims.get("type") == "m2m":
            scope = claims.get("scope", "")
            if role != "service" or not isinstance(scope, str):
                return self._error(401, *INVALID_TOKEN)
            identity: dict[str, Any] = {
                "type": "service",
                "client_id": str(claims["sub"]),
                "role": "service",
                "scopes": [s for s in scope.split(" ") if s],
                "email": None,
            }
        else:
            try:
                await self._validate_session(token, claims)
            except JWTVerificationError as exc:
                return self._error(401, exc.detail, exc.code)
            except (AuthServiceUnavailableError, AuthServiceResponseError):
                return self._error(503, *UNAVAILABLE)
            email = claims.get("email")
            if (not isinstance(email, str) or not email.strip()
                    or not isinstance(claims.get("email_verified"), bool)
                    or not isinstance(claims.get("email_otp_enabled"), bool)
                    or not isinstance(claims.get("auth_time"), int)):
                return self._error(401, *INVALID_TOKEN)
            scopes = claims.get("scopes")
            identity = {
                "type": "user",
                "user_id": str(claims["sub"]),
                "email": email,
                "email_verified": claims["email_verified"],
                "email_otp_enabled": claims["email_otp_enabled"],
                "role": str(role),
                "scopes": [str(s) for s in scopes] if isinstance(scopes, list) else [],
                "auth_time": claims["auth_time"],
            }
        conn.state.user = identity
        conn.state.auth_transport = transport
        return None


# ---------------------------------------------------------------------------


def _expiry_seconds(expires_at: Any) -> float | None:
    """Seconds until an ISO-8601 `expires_at` (None when absent/unparseable)."""
    if not isinstance(expires_at, str) or not expires_at:
        return None
    try:
        when = _dt.datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp() - time.time()


class APIKeyAuthMiddleware(_ASGIMiddleware):
    """Authenticates opaque API keys (`X-API-Key`, or `Authorization: ApiKey`)
    through authd's `/auth/introspect`, with a positive and a negative cache.

    A revoked key keeps working for up to `valid_ttl_seconds` on each process
    that cached it.

    Options added in 1.6.0: concurrent misses for one key share a single
    introspection; a cached entry never outlives the key's `expires_at`;
    `copy_identity` (True) gives each request its own copy of the identity;
    `client_errors_as_invalid` (False) turns an introspect 400/422 into a
    cached 401 `invalid_api_key` instead of 503; `hmac_cache_keys` (False)
    keys the caches with HMAC-SHA256 under a per-process random salt.
    """

    def __init__(self, app: ASGIApp, auth_base_url: str,
                 auth_client: AuthClient | None = None, cache_maxsize: int = 10000,
                 valid_ttl_seconds: float = 60, invalid_ttl_seconds: float = 10, *,
                 copy_identity: bool = True,
                 client_errors_as_invalid: bool = False,
                 hmac_cache_keys: bool = False,
                 exclude_paths: Iterable[str] | None = None) -> None:
        super().__init__(app)
        self.auth_base_url = auth_base_url
        if auth_client is None:
            auth_client = AuthClient(base_url=auth_base_url)
            self._owned_clients.append(auth_client)
        self.auth_client = auth_client
        self.cache_maxsize = cache_maxsize
        self.valid_ttl_seconds = valid_ttl_seconds
        self.invalid_ttl_seconds = invalid_ttl_seconds
        self.copy_identity = copy_identity
        self.client_errors_as_invalid = client_errors_as_invalid
        self._salt = os.urandom(32) if hmac_cache_keys else None
        self._valid: TTLCache[dict[str, Any]] = TTLCache(cache_maxsize)
        self._invalid: TTLCache[str] = TTLCache(cache_maxsize)
        self._inflight: dict[str, Any] = {}
        self.exclude_paths = tuple(exclude_paths or ())

    def _skip(self, conn: HTTPConnection) -> bool:
        return bool(self.exclude_paths) and _path_excluded(conn.url.path, self.exclude_paths)

    @staticmethod
    def extract_key(conn: HTTPConnection) -> str | None:
        key = (conn.headers.get("x-api-key") or "").strip()
        if key:
            return key
        parts = _split_scheme(conn.headers.get("authorization"))
        if parts is None or parts[0].lower() != "apikey" or not parts[1]:
            return None
        return parts[1]

    def _cache_key(self, raw: str) -> str:
        data = raw.encode("utf-8", "surrogatepass")
        if self._salt is not None:
            return hmac.new(self._salt, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()

    async def _introspect(self, raw: str, cache_key: str) -> dict[str, Any] | str:
        try:
            result = await self.auth_client.introspect_api_key(raw)
        except AuthServiceResponseError as exc:
            if self.client_errors_as_invalid and exc.status_code in (400, 422):
                self._invalid.set(cache_key, "invalid_api_key", self.invalid_ttl_seconds)
                return "invalid_api_key"
            raise
        if result.get("valid") is not True:
            code = str(result.get("code") or "invalid_api_key")
            if code not in API_KEY_ERRORS:
                code = "invalid_api_key"
            self._invalid.set(cache_key, code, self.invalid_ttl_seconds)
            return code
        key_id = str(result.get("key_id") or "").strip()
        if not key_id:
            self._invalid.set(cache_key, "invalid_api_key", self.invalid_ttl_seconds)
            return "invalid_api_key"
        scopes_raw = result.get("scopes")
        scopes = [str(s) for s in scopes_raw] if isinstance(scopes_raw, list) else []
        service = result.get("service")
        if isinstance(service, str) and service.strip():
            service = service.strip()
        elif scopes and ":" in scopes[0]:
            service = scopes[0].split(":", 1)[0]
        else:
            service = "unknown"
        identity = {"type": "api_key", "key_id": key_id, "service": service,
                    "scopes": scopes, "email": None}
        ttl = self.valid_ttl_seconds
        remaining = _expiry_seconds(result.get("expires_at"))
        if remaining is not None:
            ttl = min(ttl, remaining)
        self._valid.set(cache_key, identity, ttl)
        return identity

    async def _authenticate(self, conn: HTTPConnection) -> Response | None:
        raw = self.extract_key(conn)
        if raw is None:
            return error_response(401, API_KEY_ERRORS["invalid_api_key"], "invalid_api_key")
        cache_key = self._cache_key(raw)
        outcome: dict[str, Any] | str | None = self._valid.get(cache_key)
        if outcome is None:
            outcome = self._invalid.get(cache_key)
        if outcome is None:
            try:
                outcome = await single_flight(self._inflight, cache_key,
                                              lambda: self._introspect(raw, cache_key))
            except (AuthServiceUnavailableError, AuthServiceResponseError):
                return error_response(503, *UNAVAILABLE)
        if isinstance(outcome, str):
            return error_response(401, API_KEY_ERRORS[outcome], outcome)
        if self.copy_identity:
            outcome = {**outcome, "scopes": list(outcome["scopes"])}
        conn.state.user = outcome
        return None


# ---------------------------------------------------------------------------


class CookieCSRFMiddleware(_ASGIMiddleware):
    """Double-submit CSRF check for unsafe, cookie-authenticated requests.

    Add it *before* `JWTAuthMiddleware` (so that it runs after it).
    `allowed_origins` (1.6.0, default None = off): when set, such requests must
    also carry an `Origin` (or, without one, a `Referer`) from the list.
    """

    def __init__(self, app: ASGIApp, *, csrf_cookie_name: str = "__Host-auth_csrf",
                 csrf_header_name: str = "X-CSRF-Token",
                 access_cookie_name: str = "__Host-auth_access",
                 allowed_origins: Iterable[str] | None = None) -> None:
        super().__init__(app)
        names = {}
        for param, value in (("csrf_cookie_name", csrf_cookie_name),
                             ("csrf_header_name", csrf_header_name),
                             ("access_cookie_name", access_cookie_name)):
            v = str(value or "").strip()
            if not v:
                raise ValueError(f"{param} must be non-empty.")
            names[param] = v
        self.csrf_cookie_name = names["csrf_cookie_name"]
        self.csrf_header_name = names["csrf_header_name"]
        self.access_cookie_name = names["access_cookie_name"]
        self.allowed_origins = (frozenset(o.rstrip("/") for o in allowed_origins)
                                if allowed_origins is not None else None)

    def _skip(self, conn: HTTPConnection) -> bool:
        return conn.scope["type"] != "http" \
            or str(conn.scope.get("method", "")).upper() in SAFE_METHODS

    def is_cookie_authenticated(self, conn: HTTPConnection) -> bool:
        transport = getattr(conn.state, "auth_transport", None)
        if transport == "cookie":
            return True
        if transport == "authorization":
            return False
        if bearer_token(conn) is not None:
            return False
        return bool((conn.cookies.get(self.access_cookie_name) or "").strip())

    def _origin_ok(self, conn: HTTPConnection) -> bool:
        if self.allowed_origins is None:
            return True
        origin = conn.headers.get("origin")
        if not origin:
            referer = conn.headers.get("referer") or ""
            parts = referer.split("/")
            origin = "/".join(parts[:3]) if len(parts) >= 3 else ""
        return origin.rstrip("/") in self.allowed_origins

    async def _authenticate(self, conn: HTTPConnection) -> Response | None:
        if not self.is_cookie_authenticated(conn):
            return None
        cookie = (conn.cookies.get(self.csrf_cookie_name) or "").strip()
        header = (conn.headers.get(self.csrf_header_name) or "").strip()
        if cookie and header and _const_eq(cookie, header) and self._origin_ok(conn):
            return None
        return Response(CSRF_BODY, status_code=403, media_type="application/json")
