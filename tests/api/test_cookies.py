"""Browser-cookie transport (api-core §8) on login, refresh and logout: cookies, CSRF double
submit, transport header and inference, conflicts."""

import pytest

from test_auth import SHARED_SECRETS, STRONG, register, validate

COOKIE_BODY = {"authenticated": True, "session_transport": "cookie"}
CSRF_FAIL = {"detail": "Invalid CSRF token.", "code": "invalid_csrf_token"}
AMBIGUOUS = {"detail": "Conflicting authentication transports.",
             "code": "ambiguous_authentication_transport"}


@pytest.fixture
def app(authd, smtp):
    return authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                  "BROWSER_SESSIONS__ENABLED": "true", "BROWSER_SESSIONS__SECURE_ONLY": "true",
                  **SHARED_SECRETS})


def set_cookies(r):
    """name -> (value, attribute string) of every Set-Cookie of the response."""
    out = {}
    for v in r.headers.get_list("set-cookie"):
        nv, _, attrs = v.partition(";")
        name, _, value = nv.partition("=")
        out[name] = (value, attrs.strip())
    return out


def csrf(app):
    r = app.get("/auth/csrf")
    return r.json()["csrf_token"]


def cookie_header(**cookies):
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def browser_login(app, email, token, extra_headers=None):
    h = {"Cookie": cookie_header(**{"__Host-auth_csrf": token}), "X-CSRF-Token": token}
    h.update(extra_headers or {})
    return app.post("/auth/login", json={"email": email, "password": STRONG}, headers=h)


def test_cookie_login_refresh_logout(app, smtp):
    register(app, smtp, "browser@example.com")
    tok = csrf(app)
    r = browser_login(app, "browser@example.com", tok)
    assert r.status_code == 200 and r.json() == COOKIE_BODY, r.text
    c = set_cookies(r)
    access, a_attrs = c["__Host-auth_access"]
    refresh, r_attrs = c["__Host-auth_refresh"]
    assert "__Host-auth_csrf" not in c            # login never sets the CSRF cookie
    assert a_attrs == "Max-Age=900; Path=/; SameSite=lax; Secure; HttpOnly"
    assert r_attrs == "Max-Age=604800; Path=/; SameSite=lax; Secure; HttpOnly"
    assert validate(app, access).status_code == 204

    # refresh from the cookie; a body is ignored, even an invalid one
    jar = {"__Host-auth_refresh": refresh, "__Host-auth_csrf": tok}
    r = app.post("/auth/token", content=b"{not json",
                 headers={"Cookie": cookie_header(**jar), "X-CSRF-Token": tok})
    assert r.status_code == 200 and r.json() == COOKIE_BODY, r.text
    c2 = set_cookies(r)
    access2, refresh2 = c2["__Host-auth_access"][0], c2["__Host-auth_refresh"][0]
    assert refresh2 != refresh

    # logout with the cookies: 204 and all three cookies cleared
    jar = {"__Host-auth_access": access2, "__Host-auth_refresh": refresh2, "__Host-auth_csrf": tok}
    r = app.post("/auth/logout", headers={"Cookie": cookie_header(**jar), "X-CSRF-Token": tok})
    assert r.status_code == 204, r.text
    cleared = set_cookies(r)
    for name, httponly in (("__Host-auth_access", True), ("__Host-auth_refresh", True),
                           ("__Host-auth_csrf", False)):
        value, attrs = cleared[name]
        assert value == ""
        assert attrs.startswith("Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; "
                                "SameSite=lax; Secure")
        assert ("HttpOnly" in attrs) == httponly
    assert validate(app, access2).status_code == 401


def test_csrf_is_required_in_cookie_mode(app, smtp):
    register(app, smtp, "nocsrf@example.com")
    tok = csrf(app)
    cases = [
        {"X-Auth-Session-Transport": "cookie"},                                   # nothing
        {"X-Auth-Session-Transport": "cookie", "X-CSRF-Token": tok},             # header only
        {"Cookie": f"__Host-auth_csrf={tok}"},                                    # cookie only
        {"Cookie": f"__Host-auth_csrf={tok}", "X-CSRF-Token": tok + "x"},         # mismatch
    ]
    for h in cases:
        r = app.post("/auth/login", json={"email": "nocsrf@example.com", "password": STRONG},
                     headers=h)
        assert r.status_code == 403 and r.json() == CSRF_FAIL, h
    # explicit token transport wins over inference
    r = app.post("/auth/login", json={"email": "nocsrf@example.com", "password": STRONG},
                 headers={"X-CSRF-Token": "junk", "X-Auth-Session-Transport": "token"})
    assert r.status_code == 200 and "access_token" in r.json()


def test_pipeline_order_in_cookie_mode(app):
    # login: body validation (422) precedes CSRF (403)
    r = app.post("/auth/login", json={"email": "x"}, headers={"X-Auth-Session-Transport": "cookie"})
    assert r.status_code == 422
    # token: parses its own body, so CSRF (403) precedes the body error
    r = app.post("/auth/token", content=b"{", headers={"X-Auth-Session-Transport": "cookie"})
    assert r.status_code == 403 and r.json() == CSRF_FAIL
    # cookie refresh without a refresh cookie
    tok = "t" * 43
    r = app.post("/auth/token", headers={"Cookie": f"__Host-auth_csrf={tok}", "X-CSRF-Token": tok})
    assert r.status_code == 401 and r.json() == {"detail": "Session expired.",
                                                 "code": "session_expired"}


def test_conflicting_transports(app, smtp):
    register(app, smtp, "amb@example.com")
    tok = csrf(app)
    r = browser_login(app, "amb@example.com", tok)
    access = set_cookies(r)["__Host-auth_access"][0]
    # on login the conflict is checked in every mode
    r = app.post("/auth/login", json={"email": "amb@example.com", "password": STRONG},
                 headers={"Authorization": f"Bearer {access}",
                          "Cookie": f"__Host-auth_access={access}",
                          "X-Auth-Session-Transport": "token"})
    assert r.status_code == 400 and r.json() == AMBIGUOUS
    # on logout only in cookie mode
    r = app.post("/auth/logout", headers={"Authorization": f"Bearer {access}",
                                          "Cookie": f"__Host-auth_access={access}; "
                                                    f"__Host-auth_csrf={tok}",
                                          "X-CSRF-Token": tok})
    assert r.status_code == 400 and r.json() == AMBIGUOUS


def test_disabled_means_token_mode(authd, smtp):
    app = authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port)})
    register(app, smtp, "plain@example.com")
    r = app.post("/auth/login", json={"email": "plain@example.com", "password": STRONG},
                 headers={"X-Auth-Session-Transport": "cookie", "X-CSRF-Token": "x",
                          "Cookie": "__Host-auth_access=zzz"})
    assert r.status_code == 200 and "access_token" in r.json()
    assert not r.headers.get_list("set-cookie")
