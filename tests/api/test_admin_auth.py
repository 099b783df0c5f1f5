"""The admin principal (api-admin §2.1, api-core §10.1, decision R1), shared
by every admin-authenticated route through the ROUTE_ADMIN policy. Checked
on GET /metrics outside development (config-ops §8) and on the admin routes
of the API-key and client families."""

import pytest

from adminlib import ADMIN_PW, BOOTSTRAP_KEY, create_admin, deactivate, login_tokens, \
    make_admin, set_role, sql
from test_auth import SHARED_SECRETS, STRONG, register

INVALID_TOKEN = {"detail": "Invalid token.", "code": "invalid_token"}
SESSION_EXPIRED = {"detail": "Session expired.", "code": "session_expired"}
INSUFFICIENT = {"detail": "Insufficient role.", "code": "insufficient_role"}


@pytest.fixture
def staging(authd, smtp):
    return authd({"APP__ENVIRONMENT": "staging", "EMAIL__MAILHOG_HOST": smtp.host,
                  "EMAIL__MAILHOG_PORT": str(smtp.port), "ADMIN_API_KEY": BOOTSTRAP_KEY,
                  **SHARED_SECRETS})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def metrics(inst, headers=None):
    return inst.get("/metrics", headers=headers or {})


def test_admin_token_opens_metrics(staging):
    a = make_admin(staging)
    r = metrics(staging, a["headers"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "auth_service_http_requests_total" in r.text
    # scheme is case-insensitive, the token is trimmed
    r = metrics(staging, {"Authorization": f"bEaReR   {a['access_token']}"})
    assert r.status_code == 200


def test_missing_and_bad_tokens_are_invalid_token(staging):
    a = make_admin(staging)
    for h in ({}, bearer("garbage"), bearer("a.b.c"), {"Authorization": "Basic Zm9vOmJhcg=="},
              bearer(a["refresh_token"]),              # wrong type
              bearer(a["access_token"][:-4] + "AAAA")):  # bad signature
        r = metrics(staging, h)
        assert (r.status_code, r.json()) == (401, INVALID_TOKEN), h
        assert "auth_service_http_requests_total" not in r.text


def test_user_role_is_refused(staging, smtp):
    register(staging, smtp, "plain@example.com")
    t = login_tokens(staging, "plain@example.com", STRONG)
    r = metrics(staging, bearer(t["access_token"]))
    assert (r.status_code, r.json()) == (403, INSUFFICIENT)


def test_role_is_reread_from_the_database(staging, world):
    """R1: a demoted, deactivated or deleted admin loses access with the
    token it already holds."""
    a = make_admin(staging, "demote@example.com")
    assert metrics(staging, a["headers"]).status_code == 200
    set_role(staging, world, a["user_id"], "user")
    r = metrics(staging, a["headers"])
    assert (r.status_code, r.json()) == (403, INSUFFICIENT)
    set_role(staging, world, a["user_id"], "admin")
    assert metrics(staging, a["headers"]).status_code == 200
    deactivate(staging, world, a["user_id"])
    assert metrics(staging, a["headers"]).status_code == 403
    sql(staging, world, f"UPDATE users SET is_active = true, deleted_at = CURRENT_TIMESTAMP "
                        f"WHERE id = '{a['user_id']}'")
    assert metrics(staging, a["headers"]).status_code == 403


def test_logged_out_and_revoked_sessions(staging):
    a = make_admin(staging, "sess@example.com")
    b = login_tokens(staging, "sess@example.com", ADMIN_PW)
    # logout blocklists the access token: invalid_token
    r = staging.post("/auth/logout", json={"refresh_token": a["refresh_token"]},
                     headers=a["headers"])
    assert r.status_code == 204, r.text
    r = metrics(staging, a["headers"])
    assert (r.status_code, r.json()) == (401, INVALID_TOKEN)
    # a session revoked elsewhere: session_expired
    c = login_tokens(staging, "sess@example.com", ADMIN_PW)
    r = staging.delete("/auth/sessions", headers=bearer(c["access_token"]))
    assert r.status_code == 200, r.text
    r = metrics(staging, bearer(b["access_token"]))
    assert (r.status_code, r.json()) == (401, SESSION_EXPIRED)
    assert metrics(staging, bearer(c["access_token"])).status_code == 200


def test_bootstrap_key_ignored_outside_development(staging):
    r = metrics(staging, {"X-Admin-API-Key": BOOTSTRAP_KEY})
    assert (r.status_code, r.json()) == (401, INVALID_TOKEN)


def test_error_bodies_carry_no_extra_headers(staging):
    r = metrics(staging)
    assert r.status_code == 401
    assert "www-authenticate" not in r.headers
    assert "x-otp-required" not in r.headers and "x-reauth-required" not in r.headers


# ---- admin routes of the key and client families (unsafe methods) ----

@pytest.fixture
def dev(authd, smtp):
    return authd({"APP__ENVIRONMENT": "development", "ADMIN_API_KEY": BOOTSTRAP_KEY,
                  "EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                  **SHARED_SECRETS})


def test_bootstrap_key_in_development(dev):
    r = dev.get("/admin/api-keys", headers={"X-Admin-API-Key": BOOTSTRAP_KEY})
    assert r.status_code == 200, r.text
    # the value is trimmed (raw request: httpx refuses padded header values)
    raw = dev.raw(b"GET /admin/api-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Admin-API-Key: \t"
                  + BOOTSTRAP_KEY.encode() + b" \t\r\nConnection: close\r\n\r\n")
    assert raw is not None and raw.status == 200, raw and raw.body
    assert r.headers["cache-control"] == "no-store"
    for bad in ("", BOOTSTRAP_KEY + "x", BOOTSTRAP_KEY[:-1], BOOTSTRAP_KEY.upper()):
        r = dev.get("/admin/api-keys", headers={"X-Admin-API-Key": bad})
        assert (r.status_code, r.json()) == (401, INVALID_TOKEN), bad


def test_bootstrap_key_unset_means_no_bootstrap(authd):
    inst = authd({"APP__ENVIRONMENT": "development", "ADMIN_API_KEY": ""})
    r = inst.get("/admin/api-keys", headers={"X-Admin-API-Key": ""})
    assert (r.status_code, r.json()) == (401, INVALID_TOKEN)


def test_validation_runs_before_authentication(dev):
    """api-admin §2.1: a malformed request without credentials gets 422."""
    r = dev.post("/admin/api-keys", json={"name": 5, "scope": "x"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_credentials"
    r = dev.post("/admin/clients", content=b"{not json", headers={"Content-Type":
                                                                    "application/json"})
    assert r.status_code == 422
    r = dev.delete("/admin/api-keys/not-a-uuid")
    assert r.status_code == 422
    # well-formed but unauthenticated: 401
    r = dev.post("/admin/api-keys", json={"name": "n", "scope": "orders:read"})
    assert (r.status_code, r.json()) == (401, INVALID_TOKEN)


@pytest.fixture
def browser(authd, smtp):
    return authd({"APP__ENVIRONMENT": "staging", "BROWSER_SESSIONS__ENABLED": "true",
                  "BROWSER_SESSIONS__SECURE_ONLY": "true", "EMAIL__MAILHOG_HOST": smtp.host,
                  "EMAIL__MAILHOG_PORT": str(smtp.port), **SHARED_SECRETS})


def cookies(**kv):
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in kv.items())}


def test_cookie_transport_csrf_and_conflict(browser):
    a = make_admin(browser, "cookie@example.com")
    acc = a["access_token"]
    # GET with the access cookie: no CSRF needed
    r = browser.get("/admin/api-keys", headers=cookies(**{"__Host-auth_access": acc}))
    assert r.status_code == 200, r.text
    body = {"name": "k", "scope": "orders:read"}
    # unsafe method from the cookie without/with a wrong CSRF pair: 403
    for extra in ({}, {"X-CSRF-Token": "abc"}):
        r = browser.post("/admin/api-keys", json=body,
                         headers={**cookies(**{"__Host-auth_access": acc,
                                               "__Host-auth_csrf": "xyz"}), **extra})
        assert (r.status_code, r.json()["code"]) == (403, "invalid_csrf_token"), extra
    r = browser.post("/admin/api-keys", json=body,
                     headers={**cookies(**{"__Host-auth_access": acc, "__Host-auth_csrf": "tok"}),
                              "X-CSRF-Token": "tok"})
    assert r.status_code == 200, r.text
    # bearer plus an auth cookie on an unsafe method: 400, checked first
    r = browser.post("/admin/api-keys", json=body,
                     headers={**a["headers"], **cookies(**{"__Host-auth_refresh": "r"})})
    assert (r.status_code, r.json()) == (400, {"detail": "Conflicting authentication transports.",
                                               "code": "ambiguous_authentication_transport"})
    # the same on GET is not a conflict
    r = browser.get("/admin/api-keys",
                    headers={**a["headers"], **cookies(**{"__Host-auth_refresh": "r"})})
    assert r.status_code == 200
    # bearer alone on an unsafe method needs no CSRF
    r = browser.post("/admin/api-keys", json=body, headers=a["headers"])
    assert r.status_code == 200
