"""Command line: config-ops §1, §3, §4 (version, help, help config, config errors, migrate)."""

import re
import socket
import sqlite3
import subprocess

import pytest

from harness import LOOPBACK, PROD_ENV, free_port, new_cid, run_cli

# config-ops §2 (Compose-only variables excluded) plus authd's own test/limit settings.
ALL_VARIABLES = """
APP__ENVIRONMENT APP__SERVICE APP__HOST APP__PORT APP__LOG_LEVEL APP__TRUSTED_PROXY_CIDRS
APP__ALLOWED_HOSTS APP__EXPOSE_DOCS APP__MAX_BODY_BYTES APP__MAX_HEADER_BYTES
APP__SHUTDOWN_GRACE_SECONDS APP__TEST_HOOKS
DATABASE__URL DATABASE__POOL_SIZE DATABASE__MAX_OVERFLOW DATABASE__POOL_TIMEOUT_SECONDS
DATABASE__POOL_RECYCLE_SECONDS
REDIS__URL REDIS__HEALTH_CHECK_INTERVAL_SECONDS
JWT__ALGORITHM JWT__PRIVATE_KEY_PEM JWT__PUBLIC_KEY_PEM JWT__ACCESS_TOKEN_TTL_SECONDS
JWT__REFRESH_TOKEN_TTL_SECONDS
OAUTH__GOOGLE_CLIENT_ID OAUTH__GOOGLE_CLIENT_SECRET OAUTH__GOOGLE_REDIRECT_URI
OAUTH__REDIRECT_URI_ALLOWLIST
SAML__SP_ENTITY_ID SAML__SP_ACS_URL SAML__SP_X509_CERT SAML__SP_PRIVATE_KEY SAML__IDP_ENTITY_ID
SAML__IDP_SSO_URL SAML__IDP_X509_CERT
RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE
RATE_LIMIT__TOKEN_REQUESTS_PER_MINUTE RATE_LIMIT__SERVICE_REQUESTS_PER_MINUTE
PASSWORD_HASH__MEMORY_KIB PASSWORD_HASH__ITERATIONS PASSWORD_HASH__WORKERS
PASSWORD_HASH__QUEUE_TIMEOUT_MS
AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY
BROWSER_SESSIONS__ENABLED BROWSER_SESSIONS__INFER_COOKIE_TRANSPORT
BROWSER_SESSIONS__TRANSPORT_HEADER_NAME BROWSER_SESSIONS__ACCESS_COOKIE_NAME
BROWSER_SESSIONS__REFRESH_COOKIE_NAME BROWSER_SESSIONS__CSRF_COOKIE_NAME
BROWSER_SESSIONS__SAME_SITE BROWSER_SESSIONS__SECURE_ONLY BROWSER_SESSIONS__COOKIE_DOMAIN
BROWSER_SESSIONS__ACCESS_COOKIE_PATH BROWSER_SESSIONS__REFRESH_COOKIE_PATH
BROWSER_SESSIONS__CSRF_COOKIE_PATH BROWSER_SESSIONS__CSRF_HEADER_NAME
SIGNING_KEYS__ROTATION_OVERLAP_SECONDS SIGNING_KEYS__ENCRYPTION_KEY
EMAIL__MAILHOG_HOST EMAIL__MAILHOG_PORT EMAIL__EMAIL_FROM EMAIL__PUBLIC_BASE_URL
EMAIL__EMAIL_VERIFY_TTL_SECONDS EMAIL__PASSWORD_RESET_TTL_SECONDS EMAIL__OTP_CODE_LENGTH
EMAIL__OTP_TTL_SECONDS EMAIL__OTP_MAX_ATTEMPTS EMAIL__ACTION_TOKEN_TTL_SECONDS
EMAIL__SMTP_USERNAME EMAIL__SMTP_PASSWORD EMAIL__SMTP_STARTTLS
WEBHOOK__QUEUE_NAME WEBHOOK__REQUEST_TIMEOUT_SECONDS WEBHOOK__RESPONSE_BODY_MAX_CHARS
WEBHOOK__WORKER_TTL_SECONDS WEBHOOK__REDIS_HEALTH_CHECK_INTERVAL_SECONDS
WEBHOOK__SECRET_ENCRYPTION_KEY
RETENTION__ENABLE_RETENTION_PURGE RETENTION__AUDIT_LOG_RETENTION_DAYS
RETENTION__SESSION_LOG_RETENTION_DAYS RETENTION__PURGE_CRON
ADMIN_API_KEY OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SERVICE_NAME
""".split()

DEFAULTS = {
    "APP__SERVICE": "auth-service", "APP__HOST": "0.0.0.0", "APP__PORT": "8000",
    "APP__LOG_LEVEL": "INFO", "APP__MAX_BODY_BYTES": "65536", "APP__MAX_HEADER_BYTES": "16384",
    "DATABASE__POOL_SIZE": "20", "DATABASE__POOL_TIMEOUT_SECONDS": "30",
    "DATABASE__POOL_RECYCLE_SECONDS": "1800", "JWT__ALGORITHM": "RS256",
    "JWT__ACCESS_TOKEN_TTL_SECONDS": "900", "JWT__REFRESH_TOKEN_TTL_SECONDS": "604800",
    "RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE": "120", "RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE": "10",
    "RATE_LIMIT__TOKEN_REQUESTS_PER_MINUTE": "30", "PASSWORD_HASH__MEMORY_KIB": "19456",
    "PASSWORD_HASH__QUEUE_TIMEOUT_MS": "2000", "BROWSER_SESSIONS__SAME_SITE": "lax",
    "BROWSER_SESSIONS__ACCESS_COOKIE_NAME": "__Host-auth_access",
    "BROWSER_SESSIONS__CSRF_HEADER_NAME": "X-CSRF-Token",
    "SIGNING_KEYS__ROTATION_OVERLAP_SECONDS": "900", "EMAIL__MAILHOG_PORT": "1025",
    "EMAIL__EMAIL_FROM": "auth@localhost", "EMAIL__PUBLIC_BASE_URL": "http://localhost:8000",
    "EMAIL__OTP_CODE_LENGTH": "6", "EMAIL__EMAIL_VERIFY_TTL_SECONDS": "86400",
    "WEBHOOK__QUEUE_NAME": "webhooks", "WEBHOOK__WORKER_TTL_SECONDS": "120",
    "RETENTION__PURGE_CRON": "0 3 * * *", "RETENTION__AUDIT_LOG_RETENTION_DAYS": "90",
}

SECRETS = {
    "ADMIN_API_KEY": "ADMIN-KEY-SECRET-7f3a",
    "SIGNING_KEYS__ENCRYPTION_KEY": "SIGNING-ENC-SECRET-91bc",
    "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY": "REFRESH-HASH-SECRET-42de",
    "WEBHOOK__SECRET_ENCRYPTION_KEY": "WEBHOOK-ENC-SECRET-0a1b",
    "EMAIL__SMTP_USERNAME": "smtp-user",
    "EMAIL__SMTP_PASSWORD": "SMTP-PASS-SECRET-c0de",
}


@pytest.fixture
def held_port():
    """A port held by a listening socket: a serve that binds before validating fails with 1."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def _stderr_lines(cp):
    return [l for l in cp.stderr_text.splitlines() if l.strip()]


# --------------------------------------------------------------------------- version and help


def test_version(cli_env):
    env, wd = cli_env(fresh_db=False)
    cp = run_cli(["version"], env, wd)
    assert cp.returncode == 0, cp.stderr_text
    out = cp.stdout_text.strip()
    assert out and "\n" not in out
    assert re.search(r"\d+\.\d+", out), out


def test_version_needs_no_configuration(cli_env):
    env, wd = cli_env({"APP__ENVIRONMENT": None}, fresh_db=False)
    cp = run_cli(["version"], env, wd)
    assert cp.returncode == 0, cp.stderr_text
    assert cp.stdout_text.strip()


def test_help(cli_env):
    env, wd = cli_env({"APP__ENVIRONMENT": None}, fresh_db=False)
    cp = run_cli(["help"], env, wd)
    assert cp.returncode == 0, cp.stderr_text
    # The subcommands this build implements; `worker` of config-ops §4
    # arrives with the work that needs it and must not be advertised before.
    missing = [cmd for cmd in ("serve", "migrate", "rotate-signing-key", "create-admin", "version",
                               "help")
               if not re.search(rf"^\s*{re.escape(cmd)}\b", cp.stdout_text, re.M)]
    assert not missing, f"subcommands missing from `authd help`: {missing}"
    for cmd in ("worker",):
        assert not re.search(rf"^\s*{re.escape(cmd)}\b", cp.stdout_text, re.M), cmd


def test_help_config_lists_every_variable_with_default(cli_env):
    env, wd = cli_env(fresh_db=False)
    cp = run_cli(["help", "config"], env, wd)
    assert cp.returncode == 0, cp.stderr_text
    text = cp.stdout_text
    missing = [v for v in ALL_VARIABLES if v not in text]
    assert not missing, f"variables missing from `authd help config`: {missing}"
    lines = text.splitlines()
    wrong = []
    for var, default in DEFAULTS.items():
        start = next(i for i, l in enumerate(lines) if var in l)
        end = start + 1
        while end < len(lines) and not any(v in lines[end] for v in ALL_VARIABLES if v != var):
            end += 1
        if default not in "\n".join(lines[start:end]):
            wrong.append(var)
    assert not wrong, f"defaults not shown for: {wrong}"


def test_help_config_never_prints_secret_values(cli_env):
    env, wd = cli_env(SECRETS, fresh_db=False)
    cp = run_cli(["help", "config"], env, wd)
    assert cp.returncode == 0, cp.stderr_text
    out = cp.stdout_text + cp.stderr_text
    for name, value in SECRETS.items():
        if "SECRET" in value:
            assert value not in out, f"{name} value printed by `authd help config`"


@pytest.mark.parametrize("args", [["frobnicate"], ["serve", "--no-such-flag"], ["--bogus"]])
def test_usage_errors_exit_2(cli_env, args):
    env, wd = cli_env(fresh_db=False)
    cp = run_cli(args, env, wd, timeout=30)
    assert cp.returncode == 2, (args, cp.returncode, cp.stderr_text)
    assert cp.stderr_text.strip(), "usage error without a message on stderr"


# --------------------------------------------------------------------------- configuration errors


BAD_CONFIGS = [
    ({"APP__ENVIRONMENT": None}, "APP__ENVIRONMENT"),
    ({"APP__ENVIRONMENT": ""}, "APP__ENVIRONMENT"),
    ({"APP__ENVIRONMENT": "Production"}, "APP__ENVIRONMENT"),
    ({"APP__ENVIRONMENT": "prod"}, "APP__ENVIRONMENT"),
    ({"APP__PORT": "abc"}, "APP__PORT"),
    ({"APP__PORT": "0"}, "APP__PORT"),
    ({"APP__PORT": "65536"}, "APP__PORT"),
    ({"APP__PORT": "80x"}, "APP__PORT"),
    ({"APP__PORT": "-1"}, "APP__PORT"),
    ({"APP__LOG_LEVEL": "verbose"}, "APP__LOG_LEVEL"),
    ({"APP__LOG_LEVEL": "info"}, "APP__LOG_LEVEL"),
    ({"APP__MAX_BODY_BYTES": "1023"}, "APP__MAX_BODY_BYTES"),
    ({"APP__MAX_BODY_BYTES": "1048577"}, "APP__MAX_BODY_BYTES"),
    ({"APP__TEST_HOOKS": "maybe"}, "APP__TEST_HOOKS"),
    ({"APP__EXPOSE_DOCS": "2"}, "APP__EXPOSE_DOCS"),
    ({"APP__ALLOWED_HOSTS": "not json"}, "APP__ALLOWED_HOSTS"),
    ({"APP__TRUSTED_PROXY_CIDRS": '{"a":1}'}, "APP__TRUSTED_PROXY_CIDRS"),
    ({"DATABASE__POOL_SIZE": "0"}, "DATABASE__POOL_SIZE"),
    ({"REDIS__URL": "http://127.0.0.1:6379/0"}, "REDIS__URL"),
    ({"JWT__ALGORITHM": "HS256"}, "JWT__ALGORITHM"),
    ({"EMAIL__OTP_CODE_LENGTH": "3"}, "EMAIL__OTP_CODE_LENGTH"),
    ({"BROWSER_SESSIONS__ENABLED": "true"}, "BROWSER_SESSIONS__"),   # __Host- names need SECURE_ONLY
    ({"APP__ENVIRONMENT": "production", **PROD_ENV, "ADMIN_API_KEY": "PROD-ADMIN-SECRET-1"},
     "ADMIN_API_KEY"),
    ({"APP__ENVIRONMENT": "production", **PROD_ENV, "APP__ALLOWED_HOSTS": "[]",
      "ADMIN_API_KEY": "PROD-ADMIN-SECRET-2"}, "ADMIN_API_KEY"),     # rule 1 wins over rule 2
    ({"APP__ENVIRONMENT": "production", **PROD_ENV, "APP__ALLOWED_HOSTS": "[]"},
     "APP__ALLOWED_HOSTS"),
    ({"APP__ENVIRONMENT": "production", **PROD_ENV, "APP__ALLOWED_HOSTS": '["a.example", "*"]'},
     "APP__ALLOWED_HOSTS"),
    ({"APP__ENVIRONMENT": "production", **PROD_ENV, "SIGNING_KEYS__ENCRYPTION_KEY": ""},
     "SIGNING_KEYS__ENCRYPTION_KEY"),
    ({"APP__ENVIRONMENT": "production", **PROD_ENV,
      "EMAIL__PUBLIC_BASE_URL": "http://auth.example.com"}, "EMAIL__PUBLIC_BASE_URL"),
    ({"APP__ENVIRONMENT": "production", **PROD_ENV, "APP__TEST_HOOKS": "true"},
     "APP__TEST_HOOKS"),
]


@pytest.mark.parametrize("overrides,var", BAD_CONFIGS,
                         ids=[f"{v}-{i}" for i, (_, v) in enumerate(BAD_CONFIGS)])
def test_bad_config_exits_2_before_binding(cli_env, held_port, overrides, var):
    o = {"APP__PORT": str(held_port), **overrides}
    env, wd = cli_env(o)
    try:
        cp = run_cli(["serve"], env, wd, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"authd serve kept running with bad config {overrides}")
    assert cp.returncode == 2, (cp.returncode, cp.stderr_text)
    lines = _stderr_lines(cp)
    assert len(lines) == 1, f"expected a one-line message, got: {cp.stderr_text!r}"
    assert var in lines[0], lines[0]
    for v in overrides.values():
        if v and "SECRET" in str(v):
            assert v not in cp.stderr_text + cp.stdout_text, "secret value echoed"


def test_valid_production_config_starts(authd):
    inst = authd({"APP__ENVIRONMENT": "production", **PROD_ENV})
    r = inst.get("/health/live")
    assert r.status_code == 200
    assert inst.get("/_test/echo").status_code == 404


def test_empty_admin_key_counts_as_unset_in_production(authd):
    inst = authd({"APP__ENVIRONMENT": "production", **PROD_ENV, "ADMIN_API_KEY": ""})
    assert inst.get("/health/live").status_code == 200


def test_test_hooks_allowed_in_staging(authd):
    inst = authd({"APP__ENVIRONMENT": "staging", "APP__TEST_HOOKS": "true"})
    assert inst.post("/_test/echo", json={"x": 1}).json() == {"received": {"x": 1}}


@pytest.mark.parametrize("value", ["TRUE", "1", "yes", "on", "t", "Y"])
def test_boolean_spellings(authd, value):
    inst = authd({"APP__TEST_HOOKS": value})
    assert inst.post("/_test/echo", json={}).status_code == 200


def test_variable_names_are_case_insensitive(authd):
    inst = authd({"APP__TEST_HOOKS": None, "app__test_hooks": "true"})
    assert inst.post("/_test/echo", json={}).status_code == 200


def test_dotenv_file_is_read_and_environment_wins(authd):
    inst = authd(dotenv="# a comment\nAPP__SERVICE=from-dotenv\nAPP__ENVIRONMENT=staging\n")
    cid = new_cid("dotenv")
    inst.get("/health/live", headers={"X-Correlation-ID": cid})
    rec = inst.request_log(cid)
    assert rec["service"] == "from-dotenv"
    assert rec["environment"] == "development"


def test_serve_on_busy_port_fails(cli_env, held_port):
    env, wd = cli_env({"APP__PORT": str(held_port)})
    try:
        cp = run_cli(["serve"], env, wd, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("authd serve kept running although its port is taken (SO_REUSEPORT?)")
    assert cp.returncode == 1, (cp.returncode, cp.stderr_text)


# --------------------------------------------------------------------------- migrate


def _tables(env, world):
    url = env["DATABASE__URL"]
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        with sqlite3.connect(path) as c:
            return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db = url.rsplit("/", 1)[1]
    out = world.pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db=db)
    return set(out.split())


def test_migrate_applies_and_is_idempotent(cli_env, world):
    env, wd = cli_env()
    cp1 = run_cli(["migrate"], env, wd, timeout=120)
    assert cp1.returncode == 0, cp1.stderr_text
    tables = _tables(env, world)
    assert tables, "migrate created no table"
    cp2 = run_cli(["migrate"], env, wd, timeout=120)
    assert cp2.returncode == 0, cp2.stderr_text
    assert _tables(env, world) == tables


def test_serve_after_migrate(world, authd):
    inst = authd()
    assert inst.get("/health/ready").json() == {"status": "ready"}
    assert _tables(inst.env, world)


def test_migrate_with_bad_config_exits_2(cli_env):
    env, wd = cli_env({"APP__ENVIRONMENT": None})
    cp = run_cli(["migrate"], env, wd)
    assert cp.returncode == 2
    assert "APP__ENVIRONMENT" in cp.stderr_text


def test_migrate_unreachable_database_fails(cli_env):
    port = free_port()
    env, wd = cli_env({"DATABASE__URL": f"postgresql://postgres@127.0.0.1:{port}/nope"})
    cp = run_cli(["migrate"], env, wd, timeout=60)
    assert cp.returncode == 1, (cp.returncode, cp.stderr_text)
    assert cp.stderr_text.strip() or cp.stdout_text.strip()
