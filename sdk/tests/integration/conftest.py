"""Fixtures that run a real authd (the C binary) with the harness of the C
project's API suite (tests/api/harness.py), on the default SQLite backend."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "api"))

import harness  # noqa: E402

BOOT_KEY = "dev-bootstrap-admin-key-0123456789"
PASSWORD = "Str0ng!Passw0rd"
ENV = {
    "ADMIN_API_KEY": BOOT_KEY,
    "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN": "false",
    "RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE": "100000",
    "RATE_LIMIT__TOKEN_REQUESTS_PER_MINUTE": "100000",
}


@pytest.fixture(scope="session")
def world():
    binary = harness.configured_bin()
    if not os.access(binary, os.X_OK):
        pytest.skip(f"authd binary not found: {binary} (run make, or set AUTHD_BIN)")
    base = Path(tempfile.mkdtemp(prefix="sdk-authd-"))
    harness.snapshot_binary(base)
    w = harness.World("sqlite", base)
    w.start()
    yield w
    w.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def start_authd(world):
    started: list[harness.Authd] = []

    def start(extra: dict | None = None) -> harness.Authd:
        env, workdir = world.new_env({**ENV, **(extra or {})})
        inst = harness.Authd(env, workdir)
        started.append(inst)
        inst.start()
        inst.wait_ready()
        return inst

    yield start
    for inst in started:
        inst.finish()


@pytest.fixture(scope="module")
def authd(world):
    env, workdir = world.new_env(ENV)
    inst = harness.Authd(env, workdir).start()
    inst.wait_ready()
    yield inst
    problems = inst.finish()
    assert not problems, problems


def create_admin(inst, email: str) -> str:
    cp = harness.run_cli(["create-admin", "--email", email, "--password-stdin"], inst.env,
                         inst.workdir, stdin=(PASSWORD + "\n").encode())
    assert cp.returncode == 0, cp.stderr_text
    return json.loads(cp.stdout_text)["user_id"]


def signup(inst, email: str) -> None:
    r = inst.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code in (200, 201), r.text


def login(inst, email: str, audience: str | None = "orders-api") -> dict:
    body = {"email": email, "password": PASSWORD}
    if audience:
        body["audience"] = audience
    r = inst.post("/auth/login", json=body)
    assert r.status_code == 200, r.text
    return r.json()
