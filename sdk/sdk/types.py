"""Typing-only definitions (sdk.md §4). Runtime values are plain dicts."""

from __future__ import annotations

from typing import Literal, TypedDict, Union

__all__ = [
    "ErrorCode",
    "UserIdentity",
    "ServiceIdentity",
    "APIKeyIdentity",
    "AuthenticatedJWTIdentity",
    "AuthenticatedIdentity",
    "JWKS",
    "APIKeyIntrospectionValid",
    "APIKeyIntrospectionInvalid",
    "APIKeyIntrospectionResponse",
]

# Every code authd emits (decision R14) plus the SDK's own `invalid_csrf_token`.
ErrorCode = Literal[
    "invalid_token",
    "token_expired",
    "invalid_api_key",
    "expired_api_key",
    "revoked_api_key",
    "invalid_credentials",
    "rate_limited",
    "saml_assertion_invalid",
    "oauth_state_mismatch",
    "session_expired",
    "already_verified",
    "invalid_verify_token",
    "account_locked",
    "otp_expired",
    "invalid_otp",
    "otp_max_attempts_exceeded",
    "otp_action_mismatch",
    "action_token_invalid",
    "otp_required",
    "email_not_verified",
    "otp_issuance_blocked",
    "reauth_required",
    "invalid_scope",
    "invalid_webhook_url",
    "not_found",
    "method_not_allowed",
    "service_unavailable",
    "internal_server_error",
    # Additive (sdk.md §4 improvement; decision R14: every code authd emits).
    "invalid_csrf_token",
    "ambiguous_authentication_transport",
    "rate_limit_unavailable",
    "cannot_revoke_current_session",
    "invalid_session",
    "session_revoked",
    "insufficient_role",
    "invalid_user",
    "payload_too_large",
    "service_busy",
    "invalid_status",
    "invalid_role",
    "invalid_filter",
    "already_erased",
    "invalid_reset_token",
    "last_admin_protected",
]

Role = Literal["admin", "user", "service"]


class UserIdentity(TypedDict):
    type: Literal["user"]
    user_id: str
    email: str
    email_verified: bool
    email_otp_enabled: bool
    role: Role
    scopes: list[str]
    auth_time: int


class ServiceIdentity(TypedDict):
    type: Literal["service"]
    client_id: str
    role: Literal["service"]
    scopes: list[str]
    email: None


class APIKeyIdentity(TypedDict):
    type: Literal["api_key"]
    key_id: str
    service: str
    scopes: list[str]
    email: None


AuthenticatedJWTIdentity = Union[UserIdentity, ServiceIdentity]
AuthenticatedIdentity = Union[UserIdentity, ServiceIdentity, APIKeyIdentity]


class JWKS(TypedDict):
    keys: list[dict[str, str]]


class APIKeyIntrospectionValid(TypedDict, total=False):
    valid: Literal[True]
    user_id: str | None
    scopes: list[str]
    key_id: str
    expires_at: str | None
    service: str


class APIKeyIntrospectionInvalid(TypedDict):
    valid: Literal[False]
    code: Literal["invalid_api_key", "expired_api_key", "revoked_api_key"]


APIKeyIntrospectionResponse = Union[APIKeyIntrospectionValid, APIKeyIntrospectionInvalid]
