"""Dependencies (§12; §16 items 60-66) and package wiring (§1; items 1-4)."""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

import sdk
from sdk_testlib import AUD, FakeAuthd, asgi_client, key, mint, user_claims
from sdk.dependencies import (get_current_user, require_action_token, require_fresh_auth,
                              require_role)
from sdk.middleware import JWTAuthMiddleware

NOW = int(time.time())
USER = {"type": "user", "user_id": "user-1", "email": "a@example.com", "email_verified": True,
        "email_otp_enabled": False, "role": "user", "scopes": [], "auth_time": NOW}
ADMIN = {**USER, "role": "admin"}
SERVICE = {"type": "service", "client_id": "c", "role": "service", "scopes": [], "email": None}
APIKEY = {"type": "api_key", "key_id": "k", "service": "s", "scopes": [], "email": None}


def app_with(identity, fake: FakeAuthd | None = None, override=False):
    app = FastAPI()
    fake = fake or FakeAuthd()

    @app.middleware("http")
    async def set_user(request: Request, call_next):
        if identity is not None:
            request.state.user = identity
        return await call_next(request)

    @app.get("/me")
    async def me(user=Depends(get_current_user)):
        return user

    @app.get("/admin")
    async def admin(user=Depends(require_role("admin"))):
        return user

    @app.get("/svc")
    async def svc(user=Depends(require_role("service"))):
        return user

    @app.get("/none")
    async def none(user=Depends(require_role())):
        return user

    @app.get("/fresh")
    async def fresh(user=Depends(require_fresh_auth(300))):
        return user

    @app.get("/erase")
    async def erase(user=Depends(require_action_token(
            "erase_account", auth_base_url="http://x", expected_audience=AUD,
            auth_client=fake.client()))):
        return user

    if override:
        app.dependency_overrides[sdk.get_current_user] = lambda: identity
    return asgi_client(app)


@pytest.mark.parametrize("identity", [None, "str", {"type": "x"}, APIKEY])
async def test_get_current_user_rejects(identity):
    r = await app_with(identity).get("/me")
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}


async def test_get_current_user_returns_identity():
    assert (await app_with(SERVICE).get("/me")).json() == SERVICE


async def test_require_role():
    assert (await app_with(ADMIN).get("/admin")).status_code == 200
    r = await app_with(USER).get("/admin")
    assert r.status_code == 403 and r.json() == {"detail": "Insufficient role"}
    assert (await app_with(SERVICE).get("/svc")).status_code == 200
    assert (await app_with(ADMIN).get("/none")).status_code == 403


async def test_dependency_override_drives_checkers():
    assert sdk.get_current_user is get_current_user
    # No middleware state at all: only the override supplies the identity.
    app = FastAPI()
    fake = FakeAuthd()

    @app.get("/admin")
    async def admin(user=Depends(require_role("admin"))):
        return user

    @app.get("/fresh")
    async def fresh(user=Depends(require_fresh_auth())):
        return user

    @app.get("/erase")
    async def erase(user=Depends(require_action_token(
            "erase_account", auth_base_url="x", expected_audience=AUD,
            auth_client=fake.client()))):
        return user

    c = asgi_client(app)
    assert (await c.get("/admin")).status_code == 401
    app.dependency_overrides[sdk.get_current_user] = lambda: ADMIN
    assert (await c.get("/admin")).json() == ADMIN
    assert (await c.get("/fresh")).status_code == 200
    r = await c.get("/erase", headers={"X-Action-Token": mint(action())})
    assert r.status_code == 200
    app.dependency_overrides[sdk.get_current_user] = lambda: USER
    assert (await c.get("/admin")).status_code == 403


async def test_require_role_end_to_end(fake):
    app = FastAPI()

    @app.get("/admin")
    async def admin(user=Depends(require_role("admin"))):
        return user

    app.add_middleware(JWTAuthMiddleware, auth_base_url="x", expected_audience=AUD,
                       auth_client=fake.client())
    c = asgi_client(app)
    h = lambda role: {"Authorization": f"Bearer {mint(user_claims(role=role))}"}
    assert (await c.get("/admin", headers=h("user"))).status_code == 403
    assert (await c.get("/admin", headers=h("admin"))).status_code == 200


async def test_require_fresh_auth():
    r = await app_with({**USER, "auth_time": NOW - 600}).get("/fresh")
    assert r.status_code == 403 and r.json() == {"detail": "Re-authentication required"}
    assert r.headers["x-reauth-required"] == "true"
    assert (await app_with({**USER, "auth_time": int(time.time())}).get("/fresh")
            ).status_code == 200
    assert (await app_with({**USER, "auth_time": NOW + 100}).get("/fresh")).status_code == 200
    for bad in ({k: v for k, v in USER.items() if k != "auth_time"},
                {**USER, "auth_time": float(NOW)}):
        assert (await app_with(bad).get("/fresh")).status_code == 403
    r = await app_with(SERVICE).get("/fresh")
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}


def action(**over):
    c = user_claims(type="action_token", action="erase_account")
    for k in ("role", "email", "email_verified", "email_otp_enabled", "scopes", "auth_time"):
        c.pop(k)
    c.update(over)
    return c


async def test_action_token_ok_and_missing(fake):
    c = app_with(USER, fake)
    r = await c.get("/erase", headers={"X-Action-Token": mint(action())})
    assert r.status_code == 200 and r.json() == USER
    for h in ({}, {"X-Action-Token": "   "}):
        r = await c.get("/erase", headers=h)
        assert r.status_code == 403 and r.json() == {"detail": "Action token required"}
        assert r.headers["x-otp-required"] == "true"
        assert r.headers["x-otp-action"] == "erase_account"


async def test_action_token_failures(fake):
    c = app_with(USER, fake)
    bad = [action(exp=NOW - 10), action(type="access"), action(aud="auth-service"),
           "garbage", mint(action(), kid=7, signer="k1")]
    for tok in bad:
        if isinstance(tok, dict):
            tok = mint(tok)
        r = await c.get("/erase", headers={"X-Action-Token": tok})
        assert r.status_code == 403 and r.json() == {"detail": "Invalid action token"}, tok
        assert "x-otp-required" not in r.headers
    for over in ({"action": "delete_user"}, {"action": None}):
        r = await c.get("/erase", headers={"X-Action-Token": mint(action(**over))})
        assert r.json() == {"detail": "Action mismatch"}
    r = await c.get("/erase", headers={"X-Action-Token": mint(action(sub="other"))})
    assert r.status_code == 403 and r.json() == {"detail": "Token user mismatch"}
    r = await app_with(SERVICE, fake).get("/erase", headers={"X-Action-Token": mint(action())})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}
    down = FakeAuthd()
    down.jwks_down = True
    r = await app_with(USER, down).get("/erase", headers={"X-Action-Token": mint(action())})
    assert r.status_code == 503 and r.json() == {"detail": "Auth service unavailable"}


def test_action_factory_validation():
    with pytest.raises(ValueError) as ei:
        require_action_token("x", auth_base_url="http://x", expected_audience=" ")
    assert str(ei.value) == "expected_audience must be non-empty."
    params = inspect.signature(require_action_token).parameters
    for n in ("auth_base_url", "expected_audience", "auth_client"):
        assert params[n].kind is inspect.Parameter.KEYWORD_ONLY


# --- package --------------------------------------------------------------------

def test_exports_and_submodules():
    ns: dict = {}
    exec("from sdk import *", ns)
    eight = {"APIKeyAuthMiddleware", "AuthClient", "CookieCSRFMiddleware", "JWTAuthMiddleware",
             "get_current_user", "require_action_token", "require_fresh_auth", "require_role"}
    assert eight <= set(sdk.__all__) and eight <= set(ns)
    table = {
        "sdk.client": ["AuthClient", "DEFAULT_TIMEOUT"],
        "sdk.cache": ["JWKSCacheManager"],
        "sdk.middleware": ["JWTAuthMiddleware", "APIKeyAuthMiddleware", "CookieCSRFMiddleware"],
        "sdk.dependencies": ["get_current_user", "require_role", "require_action_token",
                             "require_fresh_auth"],
        "sdk.exceptions": ["SDKError", "AuthServiceUnavailableError",
                           "AuthServiceResponseError", "JWTVerificationError"],
        "sdk.types": ["ErrorCode", "UserIdentity", "ServiceIdentity", "APIKeyIdentity",
                      "AuthenticatedJWTIdentity", "AuthenticatedIdentity", "JWKS",
                      "APIKeyIntrospectionValid", "APIKeyIntrospectionInvalid",
                      "APIKeyIntrospectionResponse"],
        "sdk.jwt_utils": ["JWT_ALGORITHM", "REQUIRED_REGISTERED_CLAIMS",
                          "decode_unverified_jwt_header", "decode_unverified_jwt_claims",
                          "RS256_JWT"],
    }
    for mod, names in table.items():
        m = importlib.import_module(mod)
        for n in names:
            assert hasattr(m, n), (mod, n)
    from typing import get_args
    from sdk.types import ErrorCode
    codes = set(get_args(ErrorCode))
    assert {"invalid_token", "internal_server_error", "invalid_csrf_token"} <= codes
    assert len(codes) >= 29


def test_exceptions():
    from sdk.exceptions import (AuthServiceResponseError, AuthServiceUnavailableError,
                                JWTVerificationError, SDKError)
    e = AuthServiceResponseError("d", 404)
    assert (str(e), e.detail, e.status_code) == ("d", "d", 404)
    assert AuthServiceResponseError("d").status_code is None
    j = JWTVerificationError("x", "c")
    assert (str(j), j.detail, j.code) == ("x", "x", "c")
    assert issubclass(AuthServiceUnavailableError, SDKError)
    assert str(AuthServiceUnavailableError("m")) == "m"


def test_jwt_utils_decoders():
    from sdk.jwt_utils import (JWT_ALGORITHM, REQUIRED_REGISTERED_CLAIMS,
                               decode_unverified_jwt_claims, decode_unverified_jwt_header)
    assert JWT_ALGORITHM == "RS256"
    assert dict(REQUIRED_REGISTERED_CLAIMS) == {k: {"essential": True}
                                                for k in ("jti", "iat", "exp", "sub")}
    tok = mint(user_claims(sub="s"))
    assert decode_unverified_jwt_header(tok)["kid"] == "k1"
    assert decode_unverified_jwt_claims(tok)["sub"] == "s"
    for bad in ("a.b", "a.b.c.d", ".x.y", "!!!.x.y", "bm90anNvbg.x.y", "WzFd.x.y",
                "_-8.x.y"):
        with pytest.raises(ValueError):
            decode_unverified_jwt_header(bad)


def test_py_typed_present():
    assert (Path(sdk.__file__).parent / "py.typed").exists()


@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="`build` not installed")
def test_wheel_builds_and_imports(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "dist"
    cp = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out),
                         str(root)], capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    wheels = list(out.glob("auth_service_sdk-1.6.0-py3-none-any.whl"))
    assert wheels
    import zipfile
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert {n.split("/")[0] for n in names} == {"sdk", "auth_service_sdk-1.6.0.dist-info"}
    assert "sdk/py.typed" in names
    target = tmp_path / "t"
    cp = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                         "--target", str(target), str(wheels[0])], capture_output=True,
                        text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr
    code = ("import sdk; from sdk import AuthClient, JWTAuthMiddleware, APIKeyAuthMiddleware;"
            "from sdk.cache import JWKSCacheManager; print(sdk.__file__)")
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env={**os.environ, "PYTHONPATH": str(target)}, cwd=str(tmp_path))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip().startswith(str(target))
