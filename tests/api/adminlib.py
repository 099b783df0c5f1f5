"""Admin principals for tests of admin-authenticated routes (api-admin §2.1).

`make_admin(inst, email)` creates a verified admin with `authd create-admin`
and logs it in. `sql()` reaches the instance's database for set-up that has
no API yet (deactivating or demoting a user)."""

import json
import sqlite3

from harness import run_cli, wait_until

ADMIN_PW = "Adm1n!secret"
BOOTSTRAP_KEY = "dev-bootstrap-admin-key-0123456789"


def create_admin(inst, email: str, password: str = ADMIN_PW) -> str:
    """Creates (or promotes) a verified admin; returns its user id."""
    cp = run_cli(["create-admin", "--email", email, "--password-stdin"], inst.env, inst.workdir,
                 stdin=(password + "\n").encode())
    assert cp.returncode == 0, cp.stderr_text
    return json.loads(cp.stdout_text)["user_id"]


def login_tokens(inst, email: str, password: str = ADMIN_PW, **extra) -> dict:
    r = inst.post("/auth/login", json={"email": email, "password": password, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def make_admin(inst, email: str = "admin@example.com", password: str = ADMIN_PW) -> dict:
    """A logged-in admin: {"user_id", "access_token", "refresh_token", "headers"}."""
    uid = create_admin(inst, email, password)
    t = login_tokens(inst, email, password)
    return {"user_id": uid, **t, "headers": {"Authorization": f"Bearer {t['access_token']}"}}


def sql(inst, world, statement: str, params: tuple = ()) -> list[tuple]:
    """Runs one statement against the instance's database (SQLite file or
    PostgreSQL through psql) and returns the rows as tuples of strings (psql)
    or native values (SQLite). For test set-up that has no API yet."""
    url = inst.env["DATABASE__URL"]
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(url[len("sqlite:///"):])
        try:
            cur = con.execute(statement, params)
            rows = cur.fetchall()
            con.commit()
        finally:
            con.close()
        return rows
    assert not params, "psql path takes literal SQL only"
    out = world.pg.psql(statement, db=url.rsplit("/", 1)[1])
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def set_role(inst, world, user_id: str, role: str) -> None:
    sql(inst, world, f"UPDATE users SET role = '{role}' WHERE id = '{user_id}'")


def deactivate(inst, world, user_id: str) -> None:
    sql(inst, world, f"UPDATE users SET is_active = false WHERE id = '{user_id}'")


def rows(inst, world, statement):
    """sql() rows normalised to lists of strings/None for both backends."""
    out = []
    for row in sql(inst, world, statement):
        out.append([None if v in (None, "") else str(v) for v in row])
    return out


def audit(inst, world, event_type, n=1, timeout=5):
    """The audit rows of event_type (oldest first) once at least n exist."""
    q = ("SELECT actor_id, actor_type, target_id, target_type, success, failure_reason, "
         f"metadata FROM audit_events WHERE event_type = '{event_type}' ORDER BY created_at, id")
    found = []

    def enough():
        found[:] = rows(inst, world, q)
        return len(found) >= n

    wait_until(enough, timeout)
    result = []
    for actor_id, actor_type, target_id, target_type, success, reason, meta in found:
        result.append({"actor_id": actor_id, "actor_type": actor_type, "target_id": target_id,
                       "target_type": target_type, "success": success in ("1", "t", "True"),
                       "failure_reason": reason, "metadata": json.loads(meta) if meta else None})
    return result
