"""FastAPI dependencies (sdk.md §12). They authenticate nothing themselves:
they read `request.state.user` written by a middleware, and raise
`HTTPException` (body `{"detail": ...}`, no `code`).

Sub-dependencies use the default-value `Depends(...)` style on purpose:
FastAPI 0.92 does not understand `Annotated[..., Depends(...)]`.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from fastapi import Depends, HTTPException, Request

from .cache import JWKSCacheManager
from .client import AuthClient
from .exceptions import AuthServiceResponseError, AuthServiceUnavailableError
from .jwt_utils import RS256Verifier, VerificationFailure, normalize_audiences

__all__ = [
    "get_current_user",
    "get_current_identity",
    "require_role",
    "require_scopes",
    "require_fresh_auth",
    "require_action_token",
]

_ACTION_TYPES = frozenset({"action_token"})


def _invalid_token() -> HTTPException:
    return HTTPException(status_code=401, detail="Invalid token.")


def get_current_user(request: Request) -> Any:
    """The user or service identity; API-key identities are rejected (401)."""
    user = getattr(request.state, "user", None)
    if not isinstance(user, dict) or user.get("type") not in ("user", "service"):
        raise _invalid_token()
    return user


def get_current_identity(request: Request) -> Any:
    """Any identity: user, service or API key (1.6.0, additive)."""
    user = getattr(request.state, "user", None)
    if not isinstance(user, dict) or user.get("type") not in ("user", "service", "api_key"):
        raise _invalid_token()
    return user


def require_role(*roles: str) -> Callable[..., Any]:
    allowed = tuple(roles)

    def role_checker(user: Any = Depends(get_current_user)) -> Any:
        if user.get("role") not in allowed:
            raise HTTPException(status_code=403, detail="Insufficient role")
        return user

    return role_checker


def require_scopes(*scopes: str) -> Callable[..., Any]:
    """Every listed scope must be granted; works for all identity types (1.6.0)."""
    needed = tuple(scopes)

    def scope_checker(identity: Any = Depends(get_current_identity)) -> Any:
        granted = identity.get("scopes")
        granted = granted if isinstance(granted, list) else []
        if any(s not in granted for s in needed):
            raise HTTPException(status_code=403, detail="Insufficient scope")
        return identity

    return scope_checker


def require_fresh_auth(max_age_seconds: int = 300) -> Callable[..., Any]:
    def fresh_auth_checker(user: Any = Depends(get_current_user)) -> Any:
        if user.get("type") != "user":
            raise _invalid_token()
        auth_time = user.get("auth_time", 0)
        if not isinstance(auth_time, int) or time.time() - auth_time > max_age_seconds:
            raise HTTPException(status_code=403, detail="Re-authentication required",
                                headers={"X-Reauth-Required": "true"})
        return user

    return fresh_auth_checker


def require_action_token(action: str, *, auth_base_url: str,
                         expected_audience: str | list[str],
                         auth_client: AuthClient | None = None,
                         jwks_cache: JWKSCacheManager | None = None,
                         leeway_seconds: float = 5,
                         error_code_header: bool = False) -> Callable[..., Any]:
    """Requires header `X-Action-Token`: an authd action token for `action`,
    the same user and (all of) `expected_audience`. authd is not called (no
    consume), so a token can be replayed until it expires.

    1.6.0 options: `jwks_cache` shares a JWKS cache (e.g. the middleware's);
    `leeway_seconds` (5) is the `iat` clock-skew allowance;
    `error_code_header=True` adds `X-Error-Code` to the errors.
    """
    audiences = normalize_audiences(expected_audience)
    if not audiences:
        raise ValueError("expected_audience must be non-empty.")
    if jwks_cache is None:
        jwks_cache = JWKSCacheManager(auth_client if auth_client is not None
                                      else AuthClient(base_url=auth_base_url), ttl_seconds=300)
    cache = jwks_cache
    verifier = RS256Verifier(leeway_seconds=leeway_seconds, strict_kid=True)

    def fail(status: int, detail: str, code: str, headers: dict | None = None) -> HTTPException:
        if error_code_header:
            headers = {**(headers or {}), "X-Error-Code": code}
        return HTTPException(status_code=status, detail=detail, headers=headers)

    async def verify(token: str) -> dict[str, Any]:
        jwks = await cache.get_jwks()
        generation = getattr(cache, "generation", None)
        try:
            return verifier.verify(token, jwks, audiences=audiences, allowed_types=_ACTION_TYPES)
        except VerificationFailure:
            pass
        if isinstance(cache, JWKSCacheManager):
            jwks = await cache.get_jwks(force_refresh=True, seen_generation=generation)
        else:
            jwks = await cache.get_jwks(force_refresh=True)
        return verifier.verify(token, jwks, audiences=audiences, allowed_types=_ACTION_TYPES)

    async def action_token_checker(request: Request,
                                   user: Any = Depends(get_current_user)) -> Any:
        if user.get("type") != "user":
            raise fail(401, "Invalid token.", "invalid_token")
        token = (request.headers.get("x-action-token") or "").strip()
        if not token:
            raise fail(403, "Action token required", "otp_required",
                       {"X-OTP-Required": "true", "X-OTP-Action": action})
        try:
            claims = await verify(token)
        except VerificationFailure:
            raise fail(403, "Invalid action token", "action_token_invalid")
        except (AuthServiceUnavailableError, AuthServiceResponseError):
            raise fail(503, "Auth service unavailable", "service_unavailable")
        if claims.get("action") != action:
            raise fail(403, "Action mismatch", "otp_action_mismatch")
        if claims.get("sub") != user.get("user_id"):
            raise fail(403, "Token user mismatch", "action_token_invalid")
        return user

    return action_token_checker
