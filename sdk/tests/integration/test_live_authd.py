"""The SDK against a real authd (sdk.md §2; brief scenarios)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, Request

import harness
from integration.conftest import BOOT_KEY, create_admin, login, signup
from sdk import (APIKeyAuthMiddleware, AuthClient, JWTAuthMiddleware, get_current_user,
                 require_action_token, require_fresh_auth, require_role)
from sdk.cache import JWKSCacheManager

BOOT = {"X-Admin-API-Key": BOOT_KEY}


def make_app(inst, middleware=JWTAuthMiddleware, auth_client=None, **kw):
    app = FastAPI()

    @app.get("/me")
    async def me(request: Request):
        return {"user": request.state.user,
                "transport": getattr(request.state, "auth_transport", None)}

    @app.get("/admin")
    async def admin(user=Depends(require_role("admin"))):
        return user

    @app.get("/fresh")
    async def fresh(user=Depends(require_fresh_auth(300))):
        return user

    if middleware is JWTAuthMiddleware:
        kw.setdefault("expected_audience", "orders-api")
    app.add_middleware(middleware, auth_base_url=inst.base_url,
                       auth_client=auth_client or AuthClient(inst.base_url), **kw)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


def bearer(tok: str) -> dict:
    return {"Authorization": f"Bearer {tok}"}


async def test_user_login_identity_audience_logout_refresh(authd):
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    signup(authd, email)
    tokens = login(authd, email)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    orders = make_app(authd)
    r = await orders.get("/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200, r.text
    assert r.json() == {"user": {"type": "user", "user_id": claims["sub"], "email": email,
                                 "email_verified": False, "email_otp_enabled": False,
                                 "role": "user", "scopes": [],
                                 "auth_time": claims["auth_time"]},
                        "transport": "authorization"}
    r = await orders.get("/admin", headers=bearer(tokens["access_token"]))
    assert r.status_code == 403 and r.json() == {"detail": "Insufficient role"}
    assert (await orders.get("/fresh", headers=bearer(tokens["access_token"]))).status_code == 200

    billing = make_app(authd, expected_audience="billing-api")
    r = await billing.get("/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token.",
                                                 "code": "invalid_token"}

    # Refresh: the new access token keeps the audience and works.
    r = authd.post("/auth/token", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert (await orders.get("/me", headers=bearer(fresh["access_token"]))).status_code == 200

    # Logout -> the next request is refused by authd's validate (401 passed through).
    r = authd.post("/auth/logout", json={"refresh_token": fresh["refresh_token"]},
                   headers=bearer(fresh["access_token"]))
    assert r.status_code == 204, r.text
    r = await orders.get("/me", headers=bearer(fresh["access_token"]))
    assert r.status_code == 401
    assert r.json()["code"] in ("invalid_token", "session_expired")
    r = await orders.get("/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 401


async def test_admin_role_and_fresh_auth(authd, monkeypatch):
    email = f"adm-{uuid.uuid4().hex[:8]}@example.com"
    create_admin(authd, email)
    tok = login(authd, email)["access_token"]
    app = make_app(authd)
    r = await app.get("/admin", headers=bearer(tok))
    assert r.status_code == 200 and r.json()["role"] == "admin"
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 400)
    # The JWT is still valid (exp 900 s), but auth_time is now "400 s old".
    r = await app.get("/fresh", headers=bearer(tok))
    assert r.status_code == 403 and r.headers["x-reauth-required"] == "true"


async def test_api_key_lifecycle(authd):
    r = authd.post("/admin/api-keys", json={"name": "orders-bot", "scope": "orders:read"},
                   headers=BOOT)
    assert r.status_code in (200, 201), r.text
    created = r.json()
    raw, key_id = created.get("api_key") or created.get("key"), created["key_id"]
    assert raw and raw.startswith("sk_")
    app = make_app(authd, APIKeyAuthMiddleware, valid_ttl_seconds=1, invalid_ttl_seconds=1)
    r = await app.get("/me", headers={"X-API-Key": raw})
    assert r.status_code == 200, r.text
    assert r.json()["user"] == {"type": "api_key", "key_id": key_id, "service": "orders",
                                "scopes": ["orders:read"], "email": None}
    r = await app.get("/me", headers={"Authorization": "ApiKey sk_junk"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    r = authd.delete(f"/admin/api-keys/{key_id}", headers=BOOT)
    assert r.status_code == 200, r.text
    # Still cached as valid for up to valid_ttl_seconds, then refused.
    await asyncio.sleep(1.2)
    r = await app.get("/me", headers={"X-API-Key": raw})
    assert r.status_code == 401 and r.json() == {"detail": "API key revoked.",
                                                 "code": "revoked_api_key"}


async def test_client_credentials_service_identity(authd):
    email = f"adm-{uuid.uuid4().hex[:8]}@example.com"
    create_admin(authd, email)
    admin_tok = login(authd, email, audience=None)["access_token"]
    r = authd.post("/admin/clients", json={"name": "billing-worker",
                                           "scopes": ["billing:read", "billing:write"]},
                   headers=bearer(admin_tok))
    assert r.status_code == 200, r.text
    c = r.json()
    r = authd.post("/auth/token", data={"grant_type": "client_credentials",
                                        "client_id": c["client_id"],
                                        "client_secret": c["client_secret"],
                                        "audience": "orders-api"})
    assert r.status_code == 200, r.text
    app = make_app(authd)
    r = await app.get("/me", headers=bearer(r.json()["access_token"]))
    assert r.status_code == 200, r.text
    assert r.json()["user"] == {"type": "service", "client_id": c["client_id"],
                                "role": "service", "scopes": ["billing:read", "billing:write"],
                                "email": None}


async def test_outage_503_and_recovery(start_authd):
    inst = start_authd()
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    signup(inst, email)
    tok = login(inst, email)["access_token"]
    app = make_app(inst)
    assert (await app.get("/me", headers=bearer(tok))).status_code == 200
    assert inst.stop() == 0
    r = await app.get("/me", headers=bearer(tok))
    assert r.status_code == 503 and r.json() == {"detail": "Auth service unavailable.",
                                                 "code": "session_expired"}
    inst.stopped_by_test = False
    inst.start()
    inst.wait_ready()
    r = await app.get("/me", headers=bearer(tok))
    assert r.status_code == 200, r.text


async def test_key_rotation_during_traffic(start_authd):
    inst = start_authd()
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    signup(inst, email)
    shared = AuthClient(inst.base_url)
    app = make_app(inst, auth_client=shared)
    old_tok = login(inst, email)["access_token"]
    failures: list = []
    stop = asyncio.Event()

    async def traffic(tok_holder):
        while not stop.is_set():
            r = await app.get("/me", headers=bearer(tok_holder[0]))
            if r.status_code != 200:
                failures.append((r.status_code, r.text))
            await asyncio.sleep(0.01)

    holder = [old_tok]
    task = asyncio.create_task(traffic(holder))
    await asyncio.sleep(0.3)
    cp = await asyncio.to_thread(harness.run_cli, ["rotate-signing-key"], inst.env,
                                 inst.workdir)
    assert cp.returncode == 0, cp.stderr_text
    old_kid = jwt.get_unverified_header(old_tok)["kid"]
    # The serving process picks the new signing key up within its 30 s key
    # cache (config-ops §5.6); traffic keeps flowing meanwhile.
    deadline = time.monotonic() + 40
    while True:
        new_tok = (await asyncio.to_thread(login, inst, email))["access_token"]
        if jwt.get_unverified_header(new_tok)["kid"] != old_kid or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert jwt.get_unverified_header(new_tok)["kid"] != jwt.get_unverified_header(old_tok)["kid"]
    holder[0] = new_tok
    await asyncio.sleep(0.3)
    # old tokens (retiring key) keep working too
    assert (await app.get("/me", headers=bearer(old_tok))).status_code == 200
    stop.set()
    await task
    await shared.aclose()
    assert failures == []


async def test_action_token_locally_minted(authd):
    """authd has no OTP yet: action tokens are minted with a local key served
    by a JWKS stub, while the user identity comes from a real authd login."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(priv.public_key(), as_dict=True) \
        if "as_dict" in jwt.algorithms.RSAAlgorithm.to_jwk.__code__.co_varnames \
        else __import__("json").loads(jwt.algorithms.RSAAlgorithm.to_jwk(priv.public_key()))
    jwk.update({"kid": "local-1", "alg": "RS256", "use": "sig"})
    stub = AuthClient("http://stub", http_client=httpx.AsyncClient(
        base_url="http://stub",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"keys": [jwk]}))))
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    signup(authd, email)
    tok = login(authd, email)["access_token"]
    sub = jwt.decode(tok, options={"verify_signature": False})["sub"]

    app = FastAPI()

    @app.post("/erase")
    async def erase(user=Depends(require_action_token(
            "erase_account", auth_base_url="http://stub", expected_audience="orders-api",
            auth_client=stub))):
        return user

    app.add_middleware(JWTAuthMiddleware, auth_base_url=authd.base_url,
                       expected_audience="orders-api")
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    now = int(time.time())
    claims = {"jti": str(uuid.uuid4()), "iat": now, "exp": now + 300, "sub": sub,
              "type": "action_token", "aud": ["auth-service", "orders-api"],
              "action": "erase_account"}
    act = jwt.encode(claims, priv, algorithm="RS256", headers={"kid": "local-1"})
    r = await c.post("/erase", headers={**bearer(tok), "X-Action-Token": act})
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == sub
    r = await c.post("/erase", headers=bearer(tok))
    assert r.status_code == 403 and r.headers["x-otp-action"] == "erase_account"
    bad = jwt.encode({**claims, "action": "delete_user"}, priv, algorithm="RS256",
                     headers={"kid": "local-1"})
    r = await c.post("/erase", headers={**bearer(tok), "X-Action-Token": bad})
    assert r.json() == {"detail": "Action mismatch"}


async def test_signup_verified_through_captured_email(start_authd):
    """The whole user story: sign up, open the verification link from the
    email authd delivered over SMTP, log in for orders-api, and the SDK's
    middleware hands the app a verified identity."""
    import re
    import urllib.parse

    import smtp_capture

    cap = smtp_capture.SmtpCapture()
    cap.start()
    try:
        inst = start_authd({"AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN": "true",
                            "EMAIL__MAILHOG_HOST": "127.0.0.1",
                            "EMAIL__MAILHOG_PORT": str(cap.port)})
        email = f"mail-{uuid.uuid4().hex[:8]}@example.com"
        signup(inst, email)
        # Unverified: authd refuses the login.
        r = inst.post("/auth/login", json={"email": email, "password": "Str0ng!Passw0rd",
                                           "audience": "orders-api"})
        assert r.status_code == 400 and r.json()["code"] == "email_not_verified", r.text
        msg = cap.wait_for(to=email, timeout=15)
        text = msg.get_body(("plain",)).get_content()
        link = re.search(r"https?://\S+/auth/verify-email\?token=\S+", text).group(0)
        token = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["token"][0]
        r = inst.get("/auth/verify-email", params={"token": token})
        assert r.status_code == 200, r.text
        tokens = login(inst, email)
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        app = make_app(inst)
        r = await app.get("/me", headers=bearer(tokens["access_token"]))
        assert r.status_code == 200, r.text
        assert r.json()["user"] == {"type": "user", "user_id": claims["sub"], "email": email,
                                    "email_verified": True, "email_otp_enabled": False,
                                    "role": "user", "scopes": [],
                                    "auth_time": claims["auth_time"]}
    finally:
        cap.stop()
