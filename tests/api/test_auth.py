"""POST /auth/login, POST /auth/token (refresh), POST /auth/logout, GET /auth/validate
(api-core §6.3–§6.7, §7, §12): the user story end to end, through real SMTP delivery,
tokens checked with PyJWT against our JWKS, the JWT attack set, lockout, enumeration,
and two instances on one PostgreSQL + Redis."""

import base64
import json
import re
import time
import urllib.parse

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

STRONG = "Str0ng!pass"
BAD_CREDS = {"detail": "Invalid email or password.", "code": "invalid_credentials"}
INVALID_TOKEN = {"detail": "Invalid token.", "code": "invalid_token"}
EXPIRED_SESSION = {"detail": "Session expired.", "code": "session_expired"}
SHARED_SECRETS = {"SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY": "test-refresh-hash-key-0123456789",
                  "SIGNING_KEYS__ENCRYPTION_KEY": "test-signing-passphrase-0123456789"}


@pytest.fixture
def app(authd, smtp):
    return authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                  **SHARED_SECRETS})


def register(app, smtp, email, password=STRONG, verify=True):
    assert app.post("/auth/signup", json={"email": email, "password": password}).status_code == 201
    msg = smtp.wait_for(to=email.strip().lower(), timeout=15)
    text = msg.get_body(("plain",)).get_content()
    token = urllib.parse.parse_qs(urllib.parse.urlparse(
        re.search(r"https?://\S+/auth/verify-email\?token=\S+", text).group(0)).query)["token"][0]
    if verify:
        assert app.get("/auth/verify-email", params={"token": token}).status_code == 200
    return token


def login(app, email, password=STRONG, **extra):
    return app.post("/auth/login", json={"email": email, "password": password, **extra})


def jwks_key(app, token):
    kid = jwt.get_unverified_header(token)["kid"]
    keys = app.get("/.well-known/jwks.json").json()["keys"]
    return jwt.PyJWK(next(k for k in keys if k["kid"] == kid)).key


def decode(app, token, audience="auth-service"):
    return jwt.decode(token, jwks_key(app, token), algorithms=["RS256"], audience=audience)


def validate(app, token):
    return app.get("/auth/validate", headers={"Authorization": f"Bearer {token}"})


def test_user_story(app, smtp):
    register(app, smtp, "story@example.com")
    r = login(app, "Story@Example.com", audience="orders-api")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type"}
    assert body["token_type"] == "bearer"
    assert r.headers["Cache-Control"] == "no-store"
    at, rt = body["access_token"], body["refresh_token"]

    claims = decode(app, at, audience="orders-api")
    assert set(claims) == {"jti", "iat", "exp", "sub", "type", "aud", "role", "email",
                           "email_verified", "email_otp_enabled", "auth_time", "scopes"}
    assert claims["aud"] == ["auth-service", "orders-api"]
    assert claims["type"] == "access" and claims["role"] == "user"
    assert claims["email"] == "story@example.com" and claims["email_verified"] is True
    assert claims["email_otp_enabled"] is False and claims["scopes"] == []
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(at) == {"alg": "RS256", "kid": jwt.get_unverified_header(at)["kid"],
                                             "typ": "JWT"}
    rclaims = decode(app, rt)
    assert set(rclaims) == {"jti", "iat", "exp", "sub", "type", "aud"}
    assert rclaims["aud"] == "auth-service" and rclaims["type"] == "refresh"
    assert rclaims["exp"] - rclaims["iat"] == 604800

    # audience replay: an orders-api token is not a billing-api token
    with pytest.raises(jwt.InvalidAudienceError):
        decode(app, at, audience="billing-api")

    assert validate(app, at).status_code == 204

    # refresh rotates; the old refresh token is superseded, not the session
    r = app.post("/auth/token", json={"refresh_token": rt})
    assert r.status_code == 200, r.text
    at2, rt2 = r.json()["access_token"], r.json()["refresh_token"]
    c2 = decode(app, at2, audience="orders-api")
    assert c2["aud"] == ["auth-service", "orders-api"]          # remembered by the session
    assert c2["auth_time"] == claims["auth_time"]               # unchanged by refresh
    r = app.post("/auth/token", json={"refresh_token": rt})
    assert r.status_code == 401 and r.json() == EXPIRED_SESSION
    assert validate(app, at).status_code == 204                 # old access still bound
    assert validate(app, at2).status_code == 204

    # logout: 204, then every token of the session is refused
    r = app.post("/auth/logout", json={"refresh_token": rt2},
                 headers={"Authorization": f"Bearer {at2}"})
    assert r.status_code == 204 and r.content == b""
    assert validate(app, at2).json() == INVALID_TOKEN           # blocklisted jti
    r = validate(app, at)
    assert r.status_code == 401 and r.json() == EXPIRED_SESSION  # session revoked
    r = app.post("/auth/token", json={"refresh_token": rt2})
    assert r.status_code == 401 and r.json() == EXPIRED_SESSION


def test_login_errors_and_enumeration(app, smtp):
    register(app, smtp, "known@example.com")
    register(app, smtp, "unverified@example.com", verify=False)
    unknown = login(app, "nobody@example.com")
    wrong = login(app, "known@example.com", "Wrong!pass1")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json() == BAD_CREDS
    r = login(app, "unverified@example.com")
    assert r.status_code == 400 and r.json() == {"detail": "Email is not verified.",
                                                 "code": "email_not_verified"}
    # wrong password for an unverified account is still just bad credentials
    assert login(app, "unverified@example.com", "Wrong!pass1").json() == BAD_CREDS


@pytest.mark.parametrize("body", [
    {}, {"email": "a@example.com"}, {"email": "a@example.com", "password": "short"},
    {"email": "a@example.com", "password": "x" * 257}, {"email": "bad", "password": STRONG},
    {"email": "a@example.com", "password": 12345678},
    {"email": "a@example.com", "password": STRONG, "audience": ""},
    {"email": "a@example.com", "password": STRONG, "audience": 5},
    {"email": "a@example.com", "password": STRONG, "audience": "a" * 256},
])
def test_login_bad_input_422(app, body):
    r = app.post("/auth/login", json=body)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials"


def test_login_blank_audience_adds_nothing(app, smtp):
    register(app, smtp, "blankaud@example.com")
    for aud in ("   ", None, "auth-service"):
        r = login(app, "blankaud@example.com", audience=aud)
        assert r.status_code == 200, (aud, r.text)
        assert decode(app, r.json()["access_token"])["aud"] == "auth-service"


def test_lockout_ladder_and_retry_after(app, smtp):
    register(app, smtp, "lock@example.com")
    for i in range(4):
        assert login(app, "lock@example.com", "Wrong!pass1").json() == BAD_CREDS, i
    r = login(app, "lock@example.com", "Wrong!pass1")          # 5th failure locks 60 s
    assert r.status_code == 401 and r.json() == {"detail": "Account temporarily locked.",
                                                 "code": "account_locked"}
    assert 55 <= int(r.headers["Retry-After"]) <= 60
    r = login(app, "lock@example.com")                           # right password while locked
    assert r.status_code == 401 and r.json()["code"] == "account_locked"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_refresh_bad_input(app):
    dup = b'{"refresh_token":"' + b"a" * 40 + b'","refresh_token":"' + b"b" * 40 + b'"}'
    for body in (b"{", b"[]", b'{"refresh_token": 5}', b'{"refresh_token": "short"}', b"{}",
                 dup,                                                   # duplicate member
                 b'{"refresh_token":"' + b"a" * 40 + b'"}x',            # trailing bytes
                 b'{"refresh_token":"' + b"a" * 40 + b'\xff"}'):        # invalid UTF-8
        r = app.post("/auth/token", content=body, headers={"Content-Type": "text/plain"})
        assert r.status_code == 422 and r.json()["code"] == "invalid_credentials", body
    r = app.post("/auth/token", json={"refresh_token": "x" * 40})
    assert r.status_code == 401 and r.json() == EXPIRED_SESSION
    r = app.post("/auth/token", content=b"grant_type=password",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json() == {"detail": "Unsupported grant type.",
                                                 "code": "invalid_credentials"}


def test_logout_errors(app, smtp):
    register(app, smtp, "lo@example.com")
    register(app, smtp, "lo2@example.com")
    t1 = login(app, "lo@example.com").json()
    t2 = login(app, "lo2@example.com").json()
    auth = {"Authorization": f"Bearer {t1['access_token']}"}
    assert app.post("/auth/logout", json={"refresh_token": t1["refresh_token"]}).json() == INVALID_TOKEN
    assert app.post("/auth/logout", headers=auth).json() == INVALID_TOKEN
    r = app.post("/auth/logout", json={}, headers=auth)
    assert r.status_code == 422
    # someone else's refresh token: refused, nothing revoked (decision D1)
    r = app.post("/auth/logout", json={"refresh_token": t2["refresh_token"]}, headers=auth)
    assert r.status_code == 401 and r.json() == INVALID_TOKEN
    assert validate(app, t2["access_token"]).status_code == 204
    r = app.post("/auth/logout", json={"refresh_token": "y" * 40}, headers=auth)
    assert r.status_code == 401 and r.json() == INVALID_TOKEN
    # the verifier's own detail passes through on logout
    forged = forge(t1["access_token"], header={"alg": "none"})
    r = app.post("/auth/logout", json={"refresh_token": t1["refresh_token"]},
                 headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token algorithm.",
                                                 "code": "invalid_token"}
    # repeating a logout is allowed
    for _ in range(2):
        r = app.post("/auth/logout", json={"refresh_token": t1["refresh_token"]}, headers=auth)
        assert r.status_code == 204


def b64(d):
    return base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=").decode()


def forge(token, header=None, payload=None, sign=True, key=None):
    h, p, s = token.split(".")
    hd = json.loads(jwt.utils.base64url_decode(h))
    pl = json.loads(jwt.utils.base64url_decode(p))
    if header:
        hd.update(header)
        hd = {k: v for k, v in hd.items() if v is not None}
    if payload:
        pl.update(payload)
    if key is not None:
        return jwt.encode(pl, key, algorithm=hd.get("alg", "HS256"), headers=hd)
    return ".".join([b64(hd), b64(pl), s if sign else ""])


def test_validate_jwt_attack_set(app, smtp):
    register(app, smtp, "attack@example.com")
    tokens = login(app, "attack@example.com").json()
    at = tokens["access_token"]
    assert validate(app, at).status_code == 204
    pub_pem = jwks_key(app, at).public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    attacks = {
        "alg none": forge(at, header={"alg": "none"}, sign=False),
        "alg none with sig": forge(at, header={"alg": "none"}),
        "alg HS256 header": forge(at, header={"alg": "HS256"}),
        "unknown kid": forge(at, header={"kid": "AAAAAAAAAAAAAAAAAAAAAA"}),
        "missing kid": forge(at, header={"kid": None}),
        "injected kid": forge(at, header={"kid": "../../../../etc/passwd"}),
        "jku": forge(at, header={"jku": "http://127.0.0.1:1/jwks"}),
        "x5u": forge(at, header={"x5u": "http://127.0.0.1:1/x5u"}),
        "jwk": forge(at, header={"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
        "tampered payload": forge(at, payload={"role": "admin"}),
        "expired": forge(at, payload={"exp": now - 10}),
        "future iat": forge(at, payload={"iat": now + 60}),
        "wrong type": tokens["refresh_token"],
        "signed by another key": jwt.encode(jwt.decode(at, options={"verify_signature": False}),
                                            other, algorithm="RS256",
                                            headers={"kid": jwt.get_unverified_header(at)["kid"]}),
        "two segments": ".".join(at.split(".")[:2]),
        "garbage": "not-a-jwt",
    }
    for name, tok in attacks.items():
        r = validate(app, tok)
        assert r.status_code == 401 and r.json() == INVALID_TOKEN, name
    # HS256 "signed" with the public key as the HMAC secret
    pl = jwt.decode(at, options={"verify_signature": False})
    h = {"alg": "HS256", "kid": jwt.get_unverified_header(at)["kid"], "typ": "JWT"}
    import hmac, hashlib
    signing_input = f"{b64(h)}.{b64(pl)}".encode()
    sig = base64.urlsafe_b64encode(hmac.new(pub_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=").decode()
    r = validate(app, f"{signing_input.decode()}.{sig}")
    assert r.status_code == 401 and r.json() == INVALID_TOKEN
    # header forms
    for hdr in ("Bearer", "Basic abc", f"Token {at}", "Bearer x", f"Bearer{at}"):
        r = app.get("/auth/validate", headers={"Authorization": hdr})
        assert r.status_code == 401 and r.json() == INVALID_TOKEN, hdr
    r = app.get("/auth/validate", headers={"Authorization": f"bEaReR   {at}"})
    assert r.status_code == 204
    # surrounding whitespace is trimmed (raw request: httpx refuses to send it)
    raw = app.raw(f"GET /auth/validate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization:    bearer {at}   \r\nConnection: close\r\n\r\n".encode())
    assert raw is not None and raw.status == 204


def test_validate_without_header(app):
    r = app.get("/auth/validate")
    assert r.status_code == 401 and r.json() == INVALID_TOKEN


@pytest.mark.postgres_only
def test_two_instances_share_sessions(authd, smtp):
    env = {"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port), **SHARED_SECRETS}
    a = authd(env)
    b = authd(env, share_with=a)
    register(a, smtp, "two@example.com")
    t = login(a, "two@example.com").json()
    assert validate(b, t["access_token"]).status_code == 204
    r = b.post("/auth/token", json={"refresh_token": t["refresh_token"]})
    assert r.status_code == 200, r.text
    t2 = r.json()
    assert validate(a, t2["access_token"]).status_code == 204
    r = a.post("/auth/logout", json={"refresh_token": t2["refresh_token"]},
               headers={"Authorization": f"Bearer {t2['access_token']}"})
    assert r.status_code == 204
    r = validate(b, t["access_token"])
    assert r.status_code == 401 and r.json() == EXPIRED_SESSION


def test_sessions_survive_restart_on_one_box(authd, smtp, backend):
    env = {"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port), **SHARED_SECRETS}
    a = authd(env)
    register(a, smtp, "restart@example.com")
    t = login(a, "restart@example.com").json()
    a.stop()
    b = authd(env, share_with=a)
    assert validate(b, t["access_token"]).status_code == 204
    assert b.post("/auth/token", json={"refresh_token": t["refresh_token"]}).status_code == 200


def test_rotation_overlap_then_emergency_retirement(authd, smtp):
    """A token signed before `authd rotate-signing-key` keeps verifying during the overlap,
    and stops at once when its key is retired (emergency rotation, overlap 0)."""
    from harness import run_cli
    app = authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                 "RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE": "1000", **SHARED_SECRETS})
    register(app, smtp, "rot@example.com")
    old = login(app, "rot@example.com").json()["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    cp = run_cli(["rotate-signing-key"], app.env, app.workdir)
    assert cp.returncode == 0, cp.stderr_text
    assert json.loads(cp.stdout_text)["retiring_kid"] == old_kid
    assert validate(app, old).status_code == 204                      # overlap: still good
    # another process rotated: this one signs with the new key within its 30 s signer cache
    deadline = time.time() + 40
    while True:
        new = login(app, "rot@example.com").json()["access_token"]
        if jwt.get_unverified_header(new)["kid"] != old_kid or time.time() > deadline:
            break
        time.sleep(1)
    assert jwt.get_unverified_header(new)["kid"] != old_kid            # new tokens, new key
    assert validate(app, old).status_code == 204                      # old one still in overlap
    decode(app, new)                                                   # JWKS serves the new key
    cp = run_cli(["rotate-signing-key", "--overlap-seconds", "0"], app.env, app.workdir)
    assert cp.returncode == 0, cp.stderr_text
    # the key that signed `new` is now retired: refused as soon as this process re-reads its
    # key set (at most 30 s cache; an unknown kid alone does not force a reload)
    deadline = time.time() + 40
    while time.time() < deadline and validate(app, new).status_code == 204:
        time.sleep(0.5)
    r = validate(app, new)
    assert r.status_code == 401 and r.json() == INVALID_TOKEN
    kids = [k["kid"] for k in app.get("/.well-known/jwks.json").json()["keys"]]
    assert jwt.get_unverified_header(new)["kid"] not in kids


def test_bcrypt_hash_verifies_and_is_rehashed(app, smtp, backend):
    if backend != "sqlite":
        pytest.skip("plants an imported hash through the SQLite file")
    import sqlite3
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    register(app, smtp, "imported@example.com")
    legacy = crypt.crypt("Legacy!pass1", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    assert legacy.startswith("$2b$04$")
    db = app.env["DATABASE__URL"][len("sqlite:///"):]
    con = sqlite3.connect(db)
    con.execute("UPDATE users SET password_hash = ? WHERE email = 'imported@example.com'",
                (legacy,))
    con.commit()
    assert login(app, "imported@example.com", "Wrong!pass1").status_code == 401
    r = login(app, "imported@example.com", "Legacy!pass1")
    assert r.status_code == 200, r.text
    stored = con.execute("SELECT password_hash FROM users WHERE email = 'imported@example.com'"
                         ).fetchone()[0]
    con.close()
    assert stored.startswith("$argon2id$"), stored
    assert login(app, "imported@example.com", "Legacy!pass1").status_code == 200


def test_imported_unkeyed_refresh_verifier_rotates_to_keyed(app, smtp, world):
    """data-model §11.1: a session row holding the unkeyed verifier (lowercase
    hex SHA-256 of the raw token, from an imported user base) still refreshes;
    the rotation stores the keyed form. Logout finds such a row too."""
    import hashlib
    from adminlib import sql
    register(app, smtp, "unkeyed@example.com")
    of_user = ("user_id = (SELECT id FROM users WHERE email = 'unkeyed@example.com') "
               "AND revoked_at IS NULL")

    def plant(token):
        unkeyed = hashlib.sha256(token.encode()).hexdigest()  # hex: safe as a literal
        sql(app, world, f"UPDATE sessions SET hashed_refresh_token = '{unkeyed}' WHERE {of_user}")
        planted = sql(app, world, "SELECT count(*) FROM sessions WHERE hashed_refresh_token = "
                                  f"'{unkeyed}' AND {of_user}")
        assert str(planted[0][0]) == "1"
        return unkeyed

    first = login(app, "unkeyed@example.com").json()
    unkeyed = plant(first["refresh_token"])
    r = app.post("/auth/token", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    stored = sql(app, world, f"SELECT hashed_refresh_token FROM sessions WHERE {of_user}")[0][0]
    assert stored != unkeyed and len(stored) == 64
    assert stored != hashlib.sha256(r.json()["refresh_token"].encode()).hexdigest()
    # the unkeyed token was spent by the rotation
    again = app.post("/auth/token", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401 and again.json()["code"] == "session_expired"
    rotated = r.json()
    plant(rotated["refresh_token"])
    out = app.post("/auth/logout", json={"refresh_token": rotated["refresh_token"]},
                   headers={"Authorization": "Bearer " + rotated["access_token"]})
    assert out.status_code == 204, out.text
    assert validate(app, rotated["access_token"]).status_code == 401


def test_saturated_hashing_pool_answers_503_service_busy(authd, smtp):
    import concurrent.futures
    app = authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                 "PASSWORD_HASH__WORKERS": "1", "PASSWORD_HASH__QUEUE_TIMEOUT_MS": "1",
                 "PASSWORD_HASH__MEMORY_KIB": "65536", "PASSWORD_HASH__ITERATIONS": "3",
                 "RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE": "1000"})
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        rs = list(ex.map(lambda _: login(app, "nobody@example.com"), range(32)))
    busy = [r for r in rs if r.status_code == 503]
    assert busy, [r.status_code for r in rs]
    for r in busy:
        assert r.json() == {"detail": "Service busy.", "code": "service_busy"}
        assert int(r.headers["Retry-After"]) >= 1
    assert all(r.status_code in (401, 503) for r in rs)
    assert app.get("/health/live").status_code == 200


def test_concurrent_refresh_of_one_token_has_one_winner(app, smtp):
    import concurrent.futures
    register(app, smtp, "race@example.com")
    for _ in range(3):
        rt = login(app, "race@example.com").json()["refresh_token"]
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            rs = list(ex.map(lambda _: app.post("/auth/token", json={"refresh_token": rt}),
                             range(6)))
        codes = sorted(r.status_code for r in rs)
        assert codes == [200, 401, 401, 401, 401, 401], codes
        winner = next(r for r in rs if r.status_code == 200).json()
        assert validate(app, winner["access_token"]).status_code == 204
        # the winner's refresh token is the live one
        assert app.post("/auth/token", json={"refresh_token": winner["refresh_token"]}
                        ).status_code == 200


def test_login_and_refresh_audit_rows_follow_the_catalogue(app, smtp, world):
    """api-admin §9.4 / api-core §14: login rows carry the user as actor;
    refresh rows carry no actor and no target (they never reach history);
    token_kind is redacted on storage (§9.3)."""
    from adminlib import audit
    register(app, smtp, "cat@example.com")
    uid = decode(app, login(app, "cat@example.com").json()["access_token"])["sub"]
    rt = login(app, "cat@example.com").json()["refresh_token"]
    assert app.post("/auth/token", json={"refresh_token": rt}).status_code == 200
    assert app.post("/auth/token", json={"refresh_token": rt}).status_code == 401  # spent

    success = audit(app, world, "user.login.success", n=2)
    assert all(r["actor_id"] == uid and r["target_id"] is None for r in success), success
    assert success[0]["metadata"] == {"provider": "password"}
    created = audit(app, world, "session.created", n=2)
    assert all(r["target_type"] == "session" and r["target_id"] for r in created), created
    assert created[0]["metadata"] == {"provider": "password"}

    issued = audit(app, world, "token.issued", n=3)
    assert len(issued) == 3
    assert [r["actor_id"] for r in issued] == [uid, uid, None]
    assert all(r["target_id"] is None and r["actor_type"] == "user" for r in issued)
    assert all(r["metadata"] == {"provider": "password", "token_kind": "***REDACTED***"}
               for r in issued), issued

    refreshed = audit(app, world, "token.refreshed", n=2)
    assert [r["success"] for r in refreshed] == [True, False]
    assert refreshed[1]["failure_reason"] == "session_expired"
    assert all(r["actor_id"] is None and r["target_id"] is None for r in refreshed)
    assert all(r["metadata"] == {"provider": "password"} for r in refreshed), refreshed
    history = app.get("/auth/history", headers={
        "Authorization": "Bearer " + login(app, "cat@example.com").json()["access_token"]})
    assert not {"token.issued", "token.refreshed"} & {e["event_type"]
                                                       for e in history.json()["data"]}
