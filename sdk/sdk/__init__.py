"""auth-service-sdk: trust authd tokens and API keys in FastAPI/Starlette apps."""

from .cache import JWKSCacheManager, SyncJWKSCacheManager
from .client import AuthClient, SyncAuthClient
from .dependencies import (get_current_identity, get_current_user, require_action_token,
                           require_fresh_auth, require_role, require_scopes)
from .exceptions import (AuthServiceResponseError, AuthServiceUnavailableError,
                         JWTVerificationError, SDKError)
from .middleware import APIKeyAuthMiddleware, CookieCSRFMiddleware, JWTAuthMiddleware

__version__ = "1.6.0"

__all__ = [
    "APIKeyAuthMiddleware",
    "AuthClient",
    "CookieCSRFMiddleware",
    "JWTAuthMiddleware",
    "get_current_user",
    "require_action_token",
    "require_fresh_auth",
    "require_role",
    # additive in 1.6.0
    "JWKSCacheManager",
    "SyncJWKSCacheManager",
    "SyncAuthClient",
    "SDKError",
    "AuthServiceUnavailableError",
    "AuthServiceResponseError",
    "JWTVerificationError",
    "get_current_identity",
    "require_scopes",
]
