"""Shared set-up for the OAuth (M2M) client tests (api-admin §8.4, api-core §6.4 A):
an instance with an admin, client creation, the form grant and audit-row reads."""

from __future__ import annotations

import json
import time

from adminlib import BOOTSTRAP_KEY, make_admin, sql

# Every test talks from 127.0.0.1: keep the login limit out of the way.
BASE_ENV = {
    "ADMIN_API_KEY": BOOTSTRAP_KEY,
    "RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE": "100000",
    "RATE_LIMIT__TOKEN_REQUESTS_PER_MINUTE": "100000",
}
BOOT = {"X-Admin-API-Key": BOOTSTRAP_KEY}
FORM = "application/x-www-form-urlencoded"


def start(authd, env: dict | None = None, admin: bool = True):
    """An instance (development, bootstrap key configured) and, when asked,
    a logged-in admin ({"user_id", "headers", ...})."""
    inst = authd({**BASE_ENV, **(env or {})})
    return inst, (make_admin(inst) if admin else None)


def create(inst, headers: dict, name: str = "svc", scopes=("read", "write"), **extra) -> dict:
    r = inst.post("/admin/clients", json={"name": name, "scopes": list(scopes), **extra},
                  headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def grant(inst, client_id: str | None, secret: str | None, **fields):
    """POST /auth/token with a form body (api-core §6.4 A)."""
    data = {"grant_type": "client_credentials"}
    if client_id is not None:
        data["client_id"] = client_id
    if secret is not None:
        data["client_secret"] = secret
    data.update({k: v for k, v in fields.items() if v is not None})
    return inst.post("/auth/token", data=data)


def raw_form(inst, body: bytes | str, content_type: str = FORM, **kw):
    if isinstance(body, str):
        body = body.encode()
    return inst.post("/auth/token", content=body,
                     headers={"Content-Type": content_type, **kw.pop("headers", {})}, **kw)


def _none(v):
    return None if v in (None, "") else v


def _bool(v) -> bool:
    return v in (1, True, "t", "true", "1")


def audit_rows(inst, world, prefix: str = "client.", expect: int = 0, timeout: float = 5) -> list[dict]:
    """audit_events rows whose event_type starts with prefix, oldest first.
    Rows are group-committed shortly after the response: wait until at
    least `expect` are there."""
    q = ("SELECT event_type, actor_id, actor_type, target_id, target_type, success, "
         "failure_reason, metadata FROM audit_events WHERE event_type LIKE "
         f"'{prefix}%' ORDER BY created_at, id")
    deadline = time.time() + timeout
    while True:
        rows = []
        for t in sql(inst, world, q):
            meta = _none(t[7])
            rows.append({"event_type": t[0], "actor_id": _none(t[1]), "actor_type": t[2],
                         "target_id": _none(t[3]), "target_type": _none(t[4]),
                         "success": _bool(t[5]), "failure_reason": _none(t[6]),
                         "metadata": json.loads(meta) if meta else None})
        if len(rows) >= expect or time.time() > deadline:
            return rows
        time.sleep(0.05)
