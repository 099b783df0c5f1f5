"""`authd create-admin --email ADDR [--password-stdin]` (config-ops §4.2)."""

import json
import sqlite3

import jwt
import pytest

from harness import run_cli
from test_auth import SHARED_SECRETS, register

PW = "Adm1n!secret"


def admin(server, *args, stdin=None):
    return run_cli(["create-admin", *args], server.env, server.workdir,
                   stdin=stdin.encode() if stdin is not None else None)


@pytest.fixture
def app(authd, smtp):
    return authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                  **SHARED_SECRETS})


def role_of(app, email, password):
    r = app.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return jwt.decode(r.json()["access_token"], options={"verify_signature": False})["role"]


def test_creates_a_verified_admin(app):
    cp = admin(app, "--email", "  Root@Example.com ", "--password-stdin", stdin=PW + "\n")
    assert cp.returncode == 0, cp.stderr_text
    out = json.loads(cp.stdout_text)
    assert out["created"] is True and len(out["user_id"]) == 36
    assert cp.stdout_text.strip() == f'{{"user_id": "{out["user_id"]}", "created": true}}'
    assert role_of(app, "root@example.com", PW) == "admin"   # verified: login works at once
    # running again promotes nothing new and keeps the user
    cp = admin(app, "--email", "root@example.com")
    assert cp.returncode == 0 and json.loads(cp.stdout_text) == {"user_id": out["user_id"],
                                                                 "created": False}


def test_promotes_an_existing_user(app, smtp):
    register(app, smtp, "promote@example.com", password="Us3r!pass")
    assert role_of(app, "promote@example.com", "Us3r!pass") == "user"
    cp = admin(app, "--email", "PROMOTE@example.com")
    assert cp.returncode == 0, cp.stderr_text
    assert json.loads(cp.stdout_text)["created"] is False
    assert role_of(app, "promote@example.com", "Us3r!pass") == "admin"
    # with --password-stdin the password changes too
    assert admin(app, "--email", "promote@example.com", "--password-stdin",
                 stdin="N3w!password\n").returncode == 0
    assert role_of(app, "promote@example.com", "N3w!password") == "admin"


@pytest.mark.parametrize("args,stdin", [
    (["--email", "new@example.com"], None),                           # new user needs a password
    (["--email", "new@example.com", "--password-stdin"], "weak\n"),    # policy
    (["--email", "new@example.com", "--password-stdin"], ""),          # no line at all
    (["--email", "not-an-email", "--password-stdin"], PW + "\n"),
    ([], None),
    (["--bogus"], None),
])
def test_usage_and_policy_errors_exit_2(app, args, stdin):
    cp = admin(app, *args, stdin=stdin)
    assert cp.returncode == 2, (cp.returncode, cp.stdout_text, cp.stderr_text)
    assert cp.stdout_text == ""
    if stdin:
        assert stdin.strip() not in cp.stderr_text or stdin.strip() == ""


def test_deleted_user_exits_1(app, backend):
    if backend != "sqlite":
        pytest.skip("marks the row deleted through the SQLite file")
    assert admin(app, "--email", "gone@example.com", "--password-stdin",
                 stdin=PW + "\n").returncode == 0
    con = sqlite3.connect(app.env["DATABASE__URL"][len("sqlite:///"):])
    con.execute("UPDATE users SET deleted_at = '2026-01-01T00:00:00.000000Z', is_active = 0 "
                "WHERE email = 'gone@example.com'")
    con.commit()
    con.close()
    cp = admin(app, "--email", "gone@example.com")
    assert cp.returncode == 1 and "deleted" in cp.stderr_text
