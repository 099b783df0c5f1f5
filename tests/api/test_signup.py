"""POST /auth/signup, GET /auth/verify-email, POST /auth/verify-email/resend/request
(api-core §6.2, api-flows §1.2–§1.4), through real SMTP delivery into the capture server."""

import json
import re
import sqlite3
import time
import urllib.parse

import jwt
import pytest

STRONG = "Str0ng!pass"
INVALID = {"detail": "Invalid request payload.", "code": "invalid_credentials"}
ACCEPTED = {"accepted": True}
SENT = {"sent": True}
BAD_TOKEN = {"detail": "Invalid verification token.", "code": "invalid_verify_token"}


@pytest.fixture
def app(authd, smtp):
    """authd delivering mail to the capture server, staging details (exact 422 text)."""
    return authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                  "EMAIL__PUBLIC_BASE_URL": "http://auth.example.com/base/"})


def _body_text(msg) -> str:
    if msg.is_multipart():
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                return part.get_payload(decode=True).decode()
    return msg.get_payload(decode=True).decode()


def _link(msg) -> str:
    m = re.search(r"(http://auth\.example\.com/base/auth/verify-email\?token=[A-Za-z0-9_.-]+)",
                  _body_text(msg))
    assert m, _body_text(msg)
    return m.group(1)


def _token(link: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["token"][0]


def _jwks_key(app, token):
    keys = app.get("/.well-known/jwks.json").json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.PyJWK({k: v for k, v in next(k for k in keys if k["kid"] == kid).items()}).key


def signup(app, email, password=STRONG):
    return app.post("/auth/signup", json={"email": email, "password": password})


def test_signup_sends_a_verification_link_that_verifies(app, smtp):
    r = signup(app, "  New.User@Example.COM ")
    assert r.status_code == 201 and r.json() == ACCEPTED
    msg = smtp.wait_for(to="new.user@example.com", timeout=15)
    assert msg is not None, "no verification email"
    assert msg["To"] == "new.user@example.com"
    link = _link(msg)
    token = _token(link)
    claims = jwt.decode(token, _jwks_key(app, token), algorithms=["RS256"],
                        audience="auth-service")
    assert claims["type"] == "email_verify"
    assert claims["aud"] == "auth-service"
    assert set(claims) == {"jti", "iat", "exp", "sub", "type", "aud"}
    assert claims["exp"] - claims["iat"] == 86400
    assert jwt.get_unverified_header(token)["typ"] == "JWT"

    r = app.get("/auth/verify-email", params={"token": token})
    assert r.status_code == 200 and r.json() == {"verified": True}
    # single use
    r = app.get("/auth/verify-email", params={"token": token})
    assert r.status_code == 400 and r.json() == BAD_TOKEN


def test_duplicate_signup_is_indistinguishable_and_sends_nothing(app, smtp):
    assert signup(app, "dup@example.com").status_code == 201
    assert smtp.wait_for(to="dup@example.com", timeout=15) is not None
    first = len(smtp.messages)
    for email in ("dup@example.com", "DUP@Example.com"):
        r = signup(app, email, "An0ther!pass")
        assert r.status_code == 201 and r.json() == ACCEPTED
    time.sleep(1.5)
    assert len(smtp.messages) == first, "a duplicate signup sent mail"


@pytest.mark.parametrize("body", [
    {}, {"email": "a@example.com"}, {"password": STRONG},
    {"email": 5, "password": STRONG}, {"email": "a@example.com", "password": None},
    {"email": ["a@example.com"], "password": STRONG},
])
def test_signup_missing_or_mistyped_fields_422(app, body):
    r = app.post("/auth/signup", json=body)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials"


@pytest.mark.parametrize("email", [
    "", "   ", "plain", "a@b", "a@localhost", "a@example.test", "a@x.invalid", "a@x.local",
    "a@x.onion", "a@1.2.3.4", ".a@example.com", "a.@example.com", "a..b@example.com",
    "a@-example.com", "a@example-.com", "Name <a@example.com>", "\"q\"@example.com",
    "a@@example.com", "a b@example.com", "x" * 65 + "@example.com",
    "a@" + "l" * 64 + ".com", "a@" + ".".join(["abcdefghij"] * 25) + ".com",
])
def test_signup_bad_emails_422(app, email):
    r = signup(app, email)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials", email


@pytest.mark.parametrize("password", [
    "Sh0rt!", "alllower1!", "ALLUPPER!!", "NoDigits!!", "NoSpecial1", "L0ng!" + "x" * 60,
    "Sp\u00e4ce 1\u00a7",  # § is not one of the 32 ASCII specials
])
def test_signup_weak_passwords_422(app, password):
    r = signup(app, "weak@example.com", password)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials", password


@pytest.mark.parametrize("password", [
    "\u00c4bcdef1!",          # Lu outside ASCII
    "Abcdef\u0663!x",         # Nd outside ASCII (Arabic-Indic three)
    "Abcde1!x",               # exactly 8 code points
    "A1!" + "\u00e9" * 61,    # 64 code points, more bytes
])
def test_signup_policy_counts_code_points_and_unicode_categories(app, password):
    r = signup(app, f"ok{abs(hash(password)) % 10**8}@example.com", password)
    assert r.status_code == 201, (password, r.text)


def test_signup_staging_detail_is_exact(authd, smtp):
    app = authd({"APP__ENVIRONMENT": "staging", "EMAIL__MAILHOG_HOST": smtp.host,
                 "EMAIL__MAILHOG_PORT": str(smtp.port)})
    r = signup(app, "not-an-email")
    assert r.status_code == 422 and r.json() == INVALID


def test_signup_bad_bodies(app):
    for raw, ctype in [(b"{", "application/json"), (b"[]", "application/json"),
                       (b'{"email":"a@example.com","email":"b@example.com","password":"x"}',
                        "application/json"),
                       (b'{"email":"a@example.com","password":"Str0ng!pass"}', "text/plain")]:
        r = app.post("/auth/signup", content=raw, headers={"Content-Type": ctype})
        assert r.status_code == 422 and r.json()["code"] == "invalid_credentials", raw


@pytest.mark.parametrize("token", ["x" * 16, "a.b.c" + "x" * 20, "x" * 500])
def test_verify_garbage_tokens_400(app, token):
    r = app.get("/auth/verify-email", params={"token": token})
    assert r.status_code == 400 and r.json() == BAD_TOKEN


@pytest.mark.parametrize("query", ["", "?token=", "?token=short", "?token=%20%20%20"])
def test_verify_missing_or_short_token_422(app, query):
    r = app.get("/auth/verify-email" + query)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials"


def test_verify_tampered_token_400(app, smtp):
    signup(app, "tamper@example.com")
    token = _token(_link(smtp.wait_for(to="tamper@example.com", timeout=15)))
    h, p, s = token.split(".")
    payload = json.loads(jwt.utils.base64url_decode(p))
    payload["exp"] += 1000
    forged = ".".join([h, jwt.utils.base64url_encode(json.dumps(payload).encode()).decode(), s])
    r = app.get("/auth/verify-email", params={"token": forged})
    assert r.status_code == 400 and r.json() == BAD_TOKEN
    # the real one still works
    assert app.get("/auth/verify-email", params={"token": token}).status_code == 200


def test_resend_request_only_latest_link_works(app, smtp):
    signup(app, "resend@example.com")
    first = _token(_link(smtp.wait_for(to="resend@example.com", timeout=15)))
    n = len(smtp.messages)
    r = app.post("/auth/verify-email/resend/request", json={"email": "RESEND@example.com"})
    assert r.status_code == 200 and r.json() == SENT
    deadline = time.time() + 15
    while len(smtp.messages) == n and time.time() < deadline:
        time.sleep(0.1)
    assert len(smtp.messages) == n + 1
    second = _token(_link(smtp.messages[-1]))
    assert second != first
    assert app.get("/auth/verify-email", params={"token": first}).status_code == 400
    assert app.get("/auth/verify-email", params={"token": second}).status_code == 200


def test_resend_request_does_not_enumerate(app, smtp):
    signup(app, "verified@example.com")
    token = _token(_link(smtp.wait_for(to="verified@example.com", timeout=15)))
    assert app.get("/auth/verify-email", params={"token": token}).status_code == 200
    n = len(smtp.messages)
    for email in ("nobody@example.com", "verified@example.com"):
        r = app.post("/auth/verify-email/resend/request", json={"email": email})
        assert r.status_code == 200 and r.json() == SENT
    time.sleep(1.5)
    assert len(smtp.messages) == n, "unknown or verified email got mail"


def test_resend_request_limit_429(app):
    for i in range(3):
        r = app.post("/auth/verify-email/resend/request", json={"email": "lim@example.com"})
        assert r.status_code == 200, i
    r = app.post("/auth/verify-email/resend/request", json={"email": "LIM@example.com"})
    assert r.status_code == 429 and r.json() == {"detail": "Rate limit exceeded.",
                                                 "code": "rate_limited"}
    assert 3500 <= int(r.headers["Retry-After"]) <= 3600
    # another address has its own counter
    assert app.post("/auth/verify-email/resend/request",
                    json={"email": "other@example.com"}).status_code == 200


@pytest.mark.parametrize("body", [{}, {"email": 1}, {"email": "nope"}])
def test_resend_request_bad_input_422(app, body):
    r = app.post("/auth/verify-email/resend/request", json=body)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials"


def test_signup_rows_store_only_digests(app, smtp, backend):
    if backend != "sqlite":
        pytest.skip("reads the SQLite file directly")
    signup(app, "digest@example.com")
    token = _token(_link(smtp.wait_for(to="digest@example.com", timeout=15)))
    db = app.env["DATABASE__URL"][len("sqlite:///"):]
    con = sqlite3.connect(db)
    row = con.execute("SELECT password_hash, email_verify_token_hash, email_verified "
                      "FROM users WHERE email = 'digest@example.com'").fetchone()
    con.close()
    assert row[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    import hashlib
    assert row[1] == hashlib.sha256(token.encode()).hexdigest()
    assert row[2] == 0


def test_authenticated_resend(app, smtp):
    signup(app, "authresend@example.com")
    first = _token(_link(smtp.wait_for(to="authresend@example.com", timeout=15)))
    r = app.post("/auth/verify-email/resend")
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token.",
                                                 "code": "invalid_token"}
    r = app.post("/auth/verify-email/resend", headers={"Authorization": "Bearer junk"})
    assert r.status_code == 401
    assert app.get("/auth/verify-email", params={"token": first}).status_code == 200
    t = app.post("/auth/login", json={"email": "authresend@example.com",
                                      "password": STRONG}).json()
    r = app.post("/auth/verify-email/resend",
                 headers={"Authorization": f"Bearer {t['access_token']}"})
    assert r.status_code == 400 and r.json() == {"detail": "Email is already verified.",
                                                 "code": "already_verified"}


def test_authenticated_resend_for_unverified_user(authd, smtp):
    app = authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                 "EMAIL__PUBLIC_BASE_URL": "http://auth.example.com/base/",
                 "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN": "false"})
    signup(app, "unv@example.com")
    first = _token(_link(smtp.wait_for(to="unv@example.com", timeout=15)))
    t = app.post("/auth/login", json={"email": "unv@example.com", "password": STRONG}).json()
    auth = {"Authorization": f"Bearer {t['access_token']}"}
    n = len(smtp.messages)
    for i in range(3):
        r = app.post("/auth/verify-email/resend", headers=auth)
        assert r.status_code == 200 and r.json() == SENT, (i, r.text)
    r = app.post("/auth/verify-email/resend", headers=auth)
    assert r.status_code == 429 and 3500 <= int(r.headers["Retry-After"]) <= 3600
    deadline = time.time() + 15
    while len(smtp.messages) < n + 3 and time.time() < deadline:
        time.sleep(0.1)
    assert len(smtp.messages) == n + 3
    latest = _token(_link(smtp.messages[-1]))
    assert app.get("/auth/verify-email", params={"token": first}).status_code == 400
    assert app.get("/auth/verify-email", params={"token": latest}).status_code == 200
