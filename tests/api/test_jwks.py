"""GET /.well-known/jwks.json and signing-key bootstrap: api-core §4, config-ops §5.2, §5.5.

The JWKS document is checked member by member; n/e are decoded and re-encoded into the
canonical SubjectPublicKeyInfo PEM, whose SHA-256 prefix must be the published kid
(generated keys: kid = base64url(sha256(PEM)[:16]) over the standard PEM). Configured
key pairs come from the `cryptography` package.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import harness
from harness import run_cli

JWKS = "/.well-known/jwks.json"
KID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
B64URL_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def kid_of(pem_text: str) -> str:
    digest = hashlib.sha256(pem_text.encode("utf-8")).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def spki_pem(n: int, e: int) -> str:
    key = rsa.RSAPublicNumbers(e, n).public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def new_pair(traditional: bool = False) -> tuple[str, str, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
           else serialization.PrivateFormat.PKCS8)
    priv = key.private_bytes(serialization.Encoding.PEM, fmt,
                             serialization.NoEncryption()).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return priv, pub, key


def jwks(inst) -> list[dict]:
    r = inst.get(JWKS)
    assert r.status_code == 200, r.text
    return r.json()["keys"]


def kids(inst) -> list[str]:
    return [k["kid"] for k in jwks(inst)]


def check_entry(entry: dict) -> tuple[int, int]:
    """Asserts the exact JWK shape of api-core §4.3; returns (n, e)."""
    assert list(entry) == ["kty", "use", "alg", "kid", "n", "e"]
    assert all(isinstance(v, str) for v in entry.values())
    assert (entry["kty"], entry["use"], entry["alg"]) == ("RSA", "sig", "RS256")
    assert KID_RE.match(entry["kid"]), entry["kid"]
    for m in ("n", "e"):
        assert B64URL_RE.match(entry[m]), f"{m} is not unpadded base64url"
    raw_n, raw_e = b64url_decode(entry["n"]), b64url_decode(entry["e"])
    assert raw_n[0] != 0, "n has a leading zero byte"
    assert raw_e[0] != 0
    assert entry["e"] == "AQAB"
    n = int.from_bytes(raw_n, "big")
    assert n.bit_length() == 2048
    return n, int.from_bytes(raw_e, "big")


def test_jwks_shape_of_generated_key(server):
    r = server.get(JWKS)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert "cache-control" not in {k.lower() for k in r.headers.keys()}
    body = r.json()
    assert list(body) == ["keys"]
    assert len(body["keys"]) == 1
    n, e = check_entry(body["keys"][0])
    # n/e are the key: its canonical PEM hashes to the published kid.
    assert kid_of(spki_pem(n, e)) == body["keys"][0]["kid"]
    # Stable across requests (served from the cache, same key).
    assert server.get(JWKS).json() == body


def test_jwks_is_public_and_get_only(server):
    assert server.get(JWKS, headers={"Authorization": "Bearer nonsense"}).status_code == 200
    r = server.post(JWKS)
    assert r.status_code == 405
    assert r.json() == {"detail": "Method Not Allowed", "code": "method_not_allowed"}


def test_key_survives_restart(authd):
    # A fixed passphrase: on PostgreSQL the instance key would live in each
    # instance's own working directory.
    secret = {"SIGNING_KEYS__ENCRYPTION_KEY": "jwks-restart-passphrase-0123456789"}
    a = authd(secret)
    first = kids(a)
    assert a.stop() == 0
    b = authd({**secret, "DATABASE__URL": a.env["DATABASE__URL"],
               "REDIS__URL": a.env.get("REDIS__URL")}, migrate=False)
    assert kids(b) == first


def test_logs_never_carry_key_material(server):
    jwks(server)
    # Log lines are buffered per thread and flushed every few milliseconds:
    # wait for the start-up line before reading the whole output.
    assert server.wait_for_log(lambda r: r.get("event") == "signing_key_bootstrapped")
    out = server.all_output()
    assert "PRIVATE KEY" not in out
    assert "BEGIN PUBLIC KEY" not in out
    boot = [r for r in server.logs() if r.get("event") == "signing_key_bootstrapped"]
    assert len(boot) == 1 and boot[0]["kid"] == kids(server)[0]
    assert boot[0]["level"] == "info"


@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "pkcs1"])
def test_configured_pair_bootstraps_with_exact_text_kid(authd, traditional):
    priv, pub, key = new_pair(traditional)
    # Not the canonical text: no final newline. The kid is computed over the
    # exact configured text, not over a re-encoding.
    pub_text = pub.rstrip("\n")
    assert kid_of(pub_text) != kid_of(pub)
    inst = authd({"JWT__PRIVATE_KEY_PEM": priv, "JWT__PUBLIC_KEY_PEM": pub_text})
    keys = jwks(inst)
    assert len(keys) == 1
    assert keys[0]["kid"] == kid_of(pub_text)
    n, e = check_entry(keys[0])
    assert (n, e) == (key.public_key().public_numbers().n, 65537)
    assert "PRIVATE KEY" not in inst.all_output()


@pytest.mark.parametrize("cmd", [["serve"], ["rotate-signing-key"]])
def test_mismatched_pair_is_a_configuration_error(cli_env, cmd):
    priv, _, _ = new_pair()
    _, other_pub, _ = new_pair()
    env, wd = cli_env({"JWT__PRIVATE_KEY_PEM": priv, "JWT__PUBLIC_KEY_PEM": other_pub})
    if cmd == ["serve"] and env["DATABASE__URL"].startswith("postgres"):
        assert run_cli(["migrate"], env, wd).returncode == 0
    cp = run_cli(cmd, env, wd, timeout=60)
    assert cp.returncode == 2, cp.stdout_text + cp.stderr_text
    assert "JWT__PRIVATE_KEY_PEM" in cp.stderr_text
    assert "PRIVATE KEY-----" not in cp.stdout_text + cp.stderr_text
    assert cp.stdout_text.strip() == "" or cmd == ["serve"]


def test_unparsable_public_key_is_named(cli_env):
    priv, _, _ = new_pair()
    env, wd = cli_env({"JWT__PRIVATE_KEY_PEM": priv, "JWT__PUBLIC_KEY_PEM": "not a pem"})
    cp = run_cli(["rotate-signing-key"], env, wd)
    assert cp.returncode == 2
    assert "JWT__PUBLIC_KEY_PEM" in cp.stderr_text


def test_two_processes_bootstrap_one_database(authd, cli_env):
    """Both start at once on one empty database: exactly one active key, used by both."""
    env, wd = cli_env()
    if env["DATABASE__URL"].startswith("postgres"):
        assert run_cli(["migrate"], env, wd).returncode == 0
    insts = []
    for _ in range(2):
        e = dict(env)
        e["APP__PORT"] = str(harness.free_port())
        insts.append(harness.Authd(e, wd))
    threads = [threading.Thread(target=i.start) for i in insts]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in insts:
            i.wait_ready()
        a, b = (kids(i) for i in insts)
        assert a == b and len(a) == 1
    finally:
        problems = []
        for i in insts:
            problems += i.finish()
        assert not problems, "\n".join(problems)


@pytest.mark.postgres_only
def test_concurrent_bootstrap_race_on_postgres(cli_env, world):
    """Forces the race of config-ops §5.2: both processes find no active key, both insert;
    uq_signing_keys_single_active fails the loser, which then uses the winner's key.

    A psql session holds an EXCLUSIVE lock on signing_keys (plain reads still pass) until
    both processes are queued on it inside their bootstrap unit, then lets them go."""
    import subprocess
    import time

    # The first process waits on the lock until the second one queues too; the
    # default 5 s statement timeout ended that wait under a loaded CI run.
    env, wd = cli_env({"DATABASE__STATEMENT_TIMEOUT_MS": "120000"})
    assert run_cli(["migrate"], env, wd).returncode == 0
    dbname = env["DATABASE__URL"].rsplit("/", 1)[1]
    holder = subprocess.Popen(
        [str(world.pg.bindir / "psql"), "-h", harness.LOOPBACK, "-p", str(world.pg.port),
         "-U", "postgres", "-d", dbname, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    insts = []
    try:
        holder.stdin.write("BEGIN; LOCK TABLE signing_keys IN EXCLUSIVE MODE; SELECT 'locked';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "locked"
        for _ in range(2):
            e = dict(env)
            e["APP__PORT"] = str(harness.free_port())
            insts.append(harness.Authd(e, wd).start())
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'authd' " \
                  "AND wait_event_type = 'Lock'"
        assert harness.wait_until(lambda: world.pg.psql(waiting, db=dbname).strip() == "2",
                                  60, interval=0.1), "both processes should wait on the lock"
        holder.stdin.write("COMMIT;\n")
        holder.stdin.flush()
        for i in insts:
            i.wait_ready()
        a, b = (kids(i) for i in insts)
        assert a == b and len(a) == 1
        rows = world.pg.psql("SELECT count(*) FROM signing_keys", db=dbname).strip()
        assert rows == "1"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        problems = []
        for i in insts:
            problems += i.finish()
        assert not problems, "\n".join(problems)
