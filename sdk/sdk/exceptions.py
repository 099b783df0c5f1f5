"""Exceptions raised by the SDK (sdk.md §3)."""

from __future__ import annotations

__all__ = [
    "SDKError",
    "AuthServiceUnavailableError",
    "AuthServiceResponseError",
    "JWTVerificationError",
]


class SDKError(Exception):
    """Base class of every SDK error."""


class AuthServiceUnavailableError(SDKError):
    """authd could not be reached, or answered with a 5xx."""

    def __init__(self, message: str = "Auth service unavailable.") -> None:
        super().__init__(message)


class AuthServiceResponseError(SDKError):
    """authd answered something the SDK cannot use."""

    def __init__(self, detail: str, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code


class JWTVerificationError(SDKError):
    """A token was rejected (locally or by authd's /auth/validate)."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
