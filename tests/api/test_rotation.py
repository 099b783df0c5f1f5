"""`authd rotate-signing-key` against a running server: config-ops §4.1, §5.3, §5.5, §5.6.

The CLI runs with the server's environment and working directory (same DATABASE__URL,
same data dir and instance key). The server notices a rotation made by another process
through its JWKS freshness check (at most about one second, keys.h), so the tests poll
for a few seconds instead of restarting the server. Retirement is driven by rotations
(each one also runs retirement) with TTLs of a few seconds; the 60 s job is covered by
the unit tests.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time

import pytest

from harness import run_cli, wait_until
from test_jwks import JWKS, check_entry, kids

LINE_RE = re.compile(r'^\{"new_kid": "([A-Za-z0-9_-]{22})", "retiring_kid": '
                     r'(?:"([A-Za-z0-9_-]{22})"|null), "rotation_overlap_seconds": (\d+)\}\n$')

# E = max(overlap, access, otp, action, clients) = 4 s with these.
SHORT = {
    "SIGNING_KEYS__ROTATION_OVERLAP_SECONDS": "2",
    "JWT__ACCESS_TOKEN_TTL_SECONDS": "4",
    "EMAIL__OTP_TTL_SECONDS": "3",
    "EMAIL__ACTION_TOKEN_TTL_SECONDS": "2",
}


def rotate(inst, *args: str) -> tuple[str, str | None, int]:
    cp = run_cli(["rotate-signing-key", *args], inst.env, inst.workdir)
    assert cp.returncode == 0, cp.stdout_text + cp.stderr_text
    m = LINE_RE.match(cp.stdout_text)
    assert m, f"unexpected output: {cp.stdout_text!r}"
    return m.group(1), m.group(2), int(m.group(3))


def wait_kids(inst, want: list[str], timeout: float = 5) -> list[str]:
    """Polls the server's JWKS until it lists exactly `want` (sorted)."""
    got = wait_until(lambda: kids(inst) == sorted(want), timeout, interval=0.1)
    assert got, f"JWKS {kids(inst)} != {sorted(want)}"
    return kids(inst)


def audit_rows(inst, world) -> list[tuple[str, str, dict]]:
    url = inst.env["DATABASE__URL"]
    sql = ("SELECT event_type, actor_type, metadata FROM audit_events "
           "WHERE event_type = 'signing_key.rotate.success' ORDER BY created_at")
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(url[len("sqlite:///"):])
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.close()
        return [(a, b, json.loads(c)) for a, b, c in rows]
    out = world.pg.psql(sql.replace("metadata", "metadata::text").replace(
        "SELECT event_type, actor_type,", "SELECT event_type || '|' || actor_type || '|' ||"),
        db=url.rsplit("/", 1)[1])
    rows = []
    for line in out.splitlines():
        a, b, c = line.split("|", 2)
        rows.append((a, b, json.loads(c)))
    return rows


def test_cli_output_line_and_server_sees_both_keys(server, world):
    (k1,) = kids(server)
    cp = run_cli(["rotate-signing-key"], server.env, server.workdir)
    assert cp.returncode == 0, cp.stderr_text
    # Exactly one line, that format, that key order; logs went to stderr.
    m = LINE_RE.match(cp.stdout_text)
    assert m, repr(cp.stdout_text)
    k2, retiring, overlap = m.group(1), m.group(2), int(m.group(3))
    assert retiring == k1 and k2 != k1
    assert overlap == 900
    json.loads(cp.stdout_text)
    got = wait_kids(server, [k1, k2])
    assert got == sorted([k1, k2])
    r = server.get(JWKS)
    assert "cache-control" not in {k.lower() for k in r.headers.keys()}
    for e in r.json()["keys"]:
        check_entry(e)
    rows = audit_rows(server, world)
    assert len(rows) == 1
    assert rows[0][:2] == ("signing_key.rotate.success", "system")
    assert rows[0][2] == {"new_kid": k2, "retiring_kid": k1, "rotation_overlap_seconds": 900,
                          "source": "cli"}


def test_overlap_option_is_printed_and_floored(server):
    (k1,) = kids(server)
    k2, retiring, overlap = rotate(server, "--overlap-seconds", "5")
    assert (retiring, overlap) == (k1, 5)
    # E = max(5, 900, 600, 300): k1 is still published.
    wait_kids(server, [k1, k2])
    k3, retiring, overlap = rotate(server, "--overlap-seconds=60")
    assert (retiring, overlap) == (k2, 60)
    wait_kids(server, [k1, k2, k3])


def test_emergency_rotation_retires_at_once(server):
    (k1,) = kids(server)
    k2, retiring, overlap = rotate(server, "--overlap-seconds", "0")
    assert (retiring, overlap) == (k1, 0)
    wait_kids(server, [k2])


def test_configured_zero_overlap_is_not_an_emergency(authd):
    """SIGNING_KEYS__ROTATION_OVERLAP_SECONDS=0 without the option is floored by the TTLs."""
    inst = authd({**SHORT, "SIGNING_KEYS__ROTATION_OVERLAP_SECONDS": "0"})
    (k1,) = kids(inst)
    k2, retiring, overlap = rotate(inst)
    assert (retiring, overlap) == (k1, 0)
    wait_kids(inst, [k1, k2], timeout=2)


def test_rotation_twice_then_retirement_after_window(authd):
    inst = authd(SHORT)
    (k1,) = kids(inst)
    k2, r2, _ = rotate(inst)
    k3, r3, _ = rotate(inst)
    t_demoted_k2 = time.monotonic()
    assert (r2, r3) == (k1, k2)
    # {K1, K2, K3} inside the window (config-ops §5.5 timeline)
    wait_kids(inst, [k1, k2, k3], timeout=2)
    # Past E (4 s) for both retiring keys: the next rotation retires them.
    time.sleep(max(0.0, t_demoted_k2 + 4.3 - time.monotonic()))
    k4, r4, _ = rotate(inst)
    assert r4 == k3
    wait_kids(inst, [k3, k4])


BAD_ARGS = [
    ["--overlap-seconds", "-1"],
    ["--overlap-seconds", "-900"],
    ["--overlap-seconds", "1.5"],
    ["--overlap-seconds", "ten"],
    ["--overlap-seconds", ""],
    ["--overlap-seconds", " 5"],
    ["--overlap-seconds", "0x10"],
    ["--overlap-seconds", "99999999999999999999"],
    ["--overlap-seconds"],
    ["--overlap-seconds=-5"],
    ["--overlap"],
    ["--bogus"],
]


def test_bad_arguments_exit_2_without_rotating(server):
    before = kids(server)
    for args in BAD_ARGS:
        cp = run_cli(["rotate-signing-key", *args], server.env, server.workdir)
        assert cp.returncode == 2, (args, cp.stdout_text + cp.stderr_text)
        assert cp.stdout_text == "", args
        assert "overlap" in cp.stderr_text or "option" in cp.stderr_text, args
    time.sleep(1.2)  # past the server's JWKS check interval
    assert kids(server) == before


def test_rotation_without_server_on_fresh_database(cli_env):
    env, wd = cli_env()
    if env["DATABASE__URL"].startswith("postgres"):
        assert run_cli(["migrate"], env, wd).returncode == 0
    cp = run_cli(["rotate-signing-key"], env, wd)
    assert cp.returncode == 0, cp.stderr_text
    m = LINE_RE.match(cp.stdout_text)
    assert m and m.group(2) is not None  # bootstrapped first, then rotated
    # Logs (bootstrap, rotation) went to stderr as JSON lines, without key material.
    events = [json.loads(line)["event"] for line in cp.stderr_text.splitlines()
              if line.startswith("{")]
    assert "signing_key_bootstrapped" in events and "signing_key_rotated" in events
    assert "PRIVATE KEY" not in cp.stderr_text


@pytest.mark.postgres_only
def test_postgres_needs_migrations(cli_env):
    """SQLite is migrated by the command itself (as `serve` does); PostgreSQL is not."""
    env, wd = cli_env()
    cp = run_cli(["rotate-signing-key"], env, wd)
    assert cp.returncode == 1
    assert "migrate" in cp.stderr_text
    assert cp.stdout_text == ""
