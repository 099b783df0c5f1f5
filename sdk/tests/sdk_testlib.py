"""Unit-test helpers: local RSA keys/JWKS, token minting and a fake authd
served through httpx.MockTransport (counts every call)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any, Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request

from sdk.client import AuthClient

BASE = "http://authd.test"
AUD = "orders-api"


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Key:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        nums = self.private.public_key().public_numbers()
        self.jwk = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                    "n": _b64(nums.n), "e": _b64(nums.e)}


_KEYS: dict[str, Key] = {}


def key(kid: str = "k1") -> Key:
    if kid not in _KEYS:
        _KEYS[kid] = Key(kid)
    return _KEYS[kid]


def user_claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c = {"jti": str(uuid.uuid4()), "iat": now, "exp": now + 900, "sub": "user-1",
         "type": "access", "aud": ["auth-service", AUD], "role": "user",
         "email": "a@example.com", "email_verified": True, "email_otp_enabled": False,
         "scopes": [], "auth_time": now}
    c.update(over)
    return {k: v for k, v in c.items() if v is not DROP}


def m2m_claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c = {"jti": str(uuid.uuid4()), "iat": now, "exp": now + 900, "sub": "client_abc",
         "type": "m2m", "aud": ["auth-service", AUD], "role": "service",
         "scope": "billing:read billing:write"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not DROP}


DROP = object()


def mint(claims: dict[str, Any], kid: Any = "k1", signer: str | None = None,
         headers: dict | None = None) -> str:
    """RS256-signs `claims` with key `signer` (default: the kid's key); the
    header is written as given, so a numeric or missing kid is possible."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    k = key(signer or (kid if isinstance(kid, str) else "k1"))
    h: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    h.update(headers or {})
    signing = f"{_seg(h)}.{_seg(claims)}"
    sig = k.private.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def _seg(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def forge(header: dict, claims: dict, sig: bytes = b"sig") -> str:
    def enc(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    return ".".join([enc(json.dumps(header).encode()), enc(json.dumps(claims).encode()),
                     enc(sig)])


class FakeAuthd:
    """Programmable authd. `jwks` may be a list of JWKS payloads served in turn
    (the last repeats). `validate`/`introspect` are callables (request) ->
    httpx.Response, or 'down' for a connection error."""

    def __init__(self) -> None:
        self.jwks_payloads: list[Any] = [{"keys": [key("k1").jwk]}]
        self.jwks_status = 200
        self.jwks_down = False
        self.validate: Any = lambda req: httpx.Response(204)
        self.introspect: Any = lambda req: httpx.Response(
            200, json={"valid": True, "user_id": None, "scopes": ["orders:read"],
                       "key_id": "key-1", "expires_at": None, "service": "svc"})
        self.calls: dict[str, int] = {"jwks": 0, "validate": 0, "introspect": 0}
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/.well-known/jwks.json"):
            self.calls["jwks"] += 1
            if self.jwks_down:
                raise httpx.ConnectError("down", request=request)
            i = min(self.calls["jwks"] - 1, len(self.jwks_payloads) - 1)
            payload = self.jwks_payloads[i]
            if isinstance(payload, httpx.Response):
                return payload
            return httpx.Response(self.jwks_status, json=payload)
        if path.endswith("/auth/validate"):
            self.calls["validate"] += 1
            if self.validate == "down":
                raise httpx.ConnectError("down", request=request)
            return self.validate(request)
        if path.endswith("/auth/introspect"):
            self.calls["introspect"] += 1
            if self.introspect == "down":
                raise httpx.ConnectError("down", request=request)
            return self.introspect(request)
        return httpx.Response(404)

    def client(self) -> AuthClient:
        http = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(self.handler))
        return AuthClient(BASE, http_client=http)


@pytest.fixture
def fake() -> FakeAuthd:
    return FakeAuthd()


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE",
                                             "OPTIONS"])
    async def echo(request: Request, path: str):
        return {"user": getattr(request.state, "user", None),
                "transport": getattr(request.state, "auth_transport", None)}

    return app


def asgi_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


def compact(detail: str, code: str) -> bytes:
    return json.dumps({"detail": detail, "code": code}, separators=(",", ":")).encode()
