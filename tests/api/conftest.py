"""Fixtures of the black-box API suite.

`--backend sqlite` (default): each authd gets a fresh SQLite file in a temp dir.
`--backend postgres`: the session starts a private PostgreSQL cluster and a
redis-server; each authd gets a fresh database (after `authd migrate`) and a
flushed Redis.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

import harness


def pytest_addoption(parser):
    parser.addoption("--backend", action="store", default="sqlite",
                     choices=("sqlite", "postgres"),
                     help="database backend for authd: sqlite (default) or postgres (+redis)")


def pytest_configure(config):
    # SIGTERM (e.g. a CI timeout) becomes an interrupt, so finalizers stop the
    # servers this session started instead of leaving them running.
    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _interrupt)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--backend") == "postgres":
        return
    skip = pytest.mark.skip(reason="needs --backend postgres")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return [f"authd backend: {config.getoption('--backend')}",
            f"authd binary: {harness.configured_bin()}"]


@pytest.fixture(scope="session")
def backend(request) -> str:
    return request.config.getoption("--backend")


@pytest.fixture(scope="session")
def world(request, backend):
    binary = harness.configured_bin()
    if not os.access(binary, os.X_OK):
        pytest.exit(f"authd binary not found: {binary} (run `make`, or set AUTHD_BIN)",
                    returncode=1)
    base = Path(tempfile.mkdtemp(prefix="authd-tests-"))
    harness.snapshot_binary(base)
    w = harness.World(backend, base)
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True)
                         if not os.environ.get("AUTHD_KEEP_TMP") else None)
    request.addfinalizer(w.close)
    w.start()
    return w


@pytest.fixture
def authd(world, request):
    """Factory: authd(env_overrides=None, *, wait=True, args=("serve",), migrate=True,
    dotenv=None, share_with=None) -> harness.Authd.

    share_with=<an earlier instance>: the new instance uses that instance's
    DATABASE__URL and REDIS__URL (no fresh database, no Redis flush), so two
    processes serve one deployment.

    An override value None removes the variable. On PostgreSQL URLs
    `authd migrate` runs first. Every instance is stopped at teardown; the
    test fails if one died unexpectedly, did not exit 0 on SIGTERM, or wrote
    a sanitizer report.
    """
    started: list[harness.Authd] = []

    def start(env: dict | None = None, *, wait: bool = True, args=("serve",),
              migrate: bool = True, dotenv: str | None = None,
              share_with: harness.Authd | None = None) -> harness.Authd:
        if share_with is not None:
            shared = {k: share_with.env[k] for k in ("DATABASE__URL", "REDIS__URL")
                      if k in share_with.env}
            e, workdir = world.new_env({**shared, **(env or {})}, fresh_db=False)
        else:
            e, workdir = world.new_env(env)
        if dotenv is not None:
            (workdir / ".env").write_text(dotenv)
        if migrate and e.get("DATABASE__URL", "").startswith("postgres"):
            world.migrate(e, workdir)
        inst = harness.Authd(e, workdir, args)
        started.append(inst)
        inst.start()
        if wait:
            inst.wait_ready()
        return inst

    yield start

    problems: list[str] = []
    for inst in started:
        problems += inst.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def server(authd) -> harness.Authd:
    """One authd with the default test configuration (development, test hooks on)."""
    return authd()


@pytest.fixture
def cli_env(world):
    """Factory: cli_env(overrides=None, fresh_db=True) -> (env, workdir) for `authd <cmd>` runs."""
    def make(overrides: dict | None = None, fresh_db: bool = True):
        return world.new_env(overrides, fresh_db=fresh_db)
    return make


@pytest.fixture
def smtp_factory():
    """Factory: smtp_factory(port=None, *, start=True, auth=None) -> smtp_capture.SmtpCapture.

    A capture SMTP server on 127.0.0.1 (aiosmtpd in a thread). With start=False
    the port is chosen but nothing listens until `.start()` (a "mail server
    down" test). auth=("user", "pw") makes AUTH mandatory. Every server is
    stopped at teardown."""
    import smtp_capture  # aiosmtpd is imported only by the tests that use mail

    made: list = []

    def make(port: int | None = None, *, start: bool = True, auth=None):
        cap = smtp_capture.SmtpCapture(port=port, auth=auth)
        made.append(cap)
        if start:
            cap.start()
        return cap

    yield make
    for cap in made:
        cap.stop()


@pytest.fixture
def smtp(smtp_factory):
    """A running capture SMTP server: .port, .messages (email.message.EmailMessage
    list), .wait_for(to=..., timeout=10, subject=None) -> EmailMessage,
    .text_of(msg), .html_of(msg), .captured (envelopes and raw bytes).
    Point authd at it with EMAIL__MAILHOG_HOST=127.0.0.1, EMAIL__MAILHOG_PORT=smtp.port."""
    return smtp_factory()
