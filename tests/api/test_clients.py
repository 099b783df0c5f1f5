"""Admin routes for OAuth (M2M) clients (api-admin §8.4, §5.5, §4; decisions R1, R9, R11)."""

import base64
import hashlib
import json
import re
import uuid

import pytest

from adminlib import create_admin, login_tokens, set_role, sql
from clientlib import BOOT, audit_rows, create, start
from harness import PROD_ENV

CLIENT_ID_RE = re.compile(r"^client_[A-Za-z0-9_-]{22}$")
SECRET_RE = re.compile(r"^cs_[A-Za-z0-9_-]{43}$")
TS_Z_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
CLIENT_FIELDS = ["id", "client_id", "client_secret_prefix", "name", "scopes", "is_active",
                 "token_ttl_seconds", "created_at"]
INVALID = {"detail": "Invalid request payload.", "code": "invalid_credentials"}
NOT_FOUND = {"detail": "Client not found.", "code": "invalid_credentials"}


def assert_422(r):
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_credentials"
    assert body["detail"].startswith("Invalid request payload")


def test_create_shape_formats_and_storage(authd, world):
    inst, admin = start(authd)
    r = inst.post("/admin/clients", headers=admin["headers"],
                  json={"name": "  billing worker\u00a0", "scopes": [" a ", "b", "a", "  ", "c", "b"]})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    c = r.json()
    assert list(c) == CLIENT_FIELDS + ["client_secret"]
    assert str(uuid.UUID(c["id"])) == c["id"]
    assert CLIENT_ID_RE.match(c["client_id"]) and len(c["client_id"]) == 29
    assert SECRET_RE.match(c["client_secret"]) and len(c["client_secret"]) == 46
    assert c["client_secret_prefix"] == c["client_secret"][:8]
    assert c["name"] == "billing worker"
    assert c["scopes"] == ["a", "b", "c"]
    assert c["is_active"] is True
    assert c["token_ttl_seconds"] == 3600
    assert TS_Z_RE.match(c["created_at"])

    # Only the digest and the prefix are stored; role is always service.
    rows = sql(inst, world, "SELECT client_secret_hash, client_secret_prefix, role FROM "
                            f"oauth_clients WHERE id = '{c['id']}'")
    assert rows and rows[0][0] == hashlib.sha256(c["client_secret"].encode()).hexdigest()
    assert rows[0][1] == c["client_secret"][:8] and rows[0][2] == "service"
    dump = sql(inst, world, f"SELECT * FROM oauth_clients WHERE id = '{c['id']}'")
    assert c["client_secret"] not in repr(dump)

    # Explicit TTL, names up to 255 characters after trimming, non-ASCII.
    c2 = create(inst, admin["headers"], name="  " + "é" * 255 + "  ", scopes=["x"],
                token_ttl_seconds=1)
    assert c2["name"] == "é" * 255 and c2["token_ttl_seconds"] == 1
    assert c2["client_id"] != c["client_id"]
    c3 = create(inst, admin["headers"], token_ttl_seconds=2147483647)
    assert c3["token_ttl_seconds"] == 2147483647


def test_create_business_400s(authd):
    inst, admin = start(authd)
    h = admin["headers"]
    for name in ["", "   ", "\t\n", "\u3000"]:
        r = inst.post("/admin/clients", headers=h, json={"name": name, "scopes": ["a"]})
        assert r.status_code == 400, (name, r.text)
        assert r.json() == {"detail": "Client name is required.", "code": "invalid_credentials"}
    for scopes in [[""], ["  ", "\t"]]:
        r = inst.post("/admin/clients", headers=h, json={"name": "n", "scopes": scopes})
        assert r.status_code == 400, r.text
        assert r.json() == {"detail": "At least one scope is required.", "code": "invalid_scope"}
    # Nothing was created.
    assert inst.get("/admin/clients", headers=h).json()["data"] == []


BAD_CREATE_BODIES = [
    {"scopes": ["a"]},                                   # name missing
    {"name": None, "scopes": ["a"]},
    {"name": 5, "scopes": ["a"]},
    {"name": "x" * 256, "scopes": ["a"]},
    {"name": "n"},                                       # scopes missing
    {"name": "n", "scopes": None},
    {"name": "n", "scopes": "a"},
    {"name": "n", "scopes": []},
    {"name": "n", "scopes": [1]},
    {"name": "n", "scopes": ["a", None]},
    {"name": "n", "scopes": {"a": 1}},
    {"name": "n", "scopes": ["a"], "token_ttl_seconds": 0},
    {"name": "n", "scopes": ["a"], "token_ttl_seconds": -5},
    {"name": "n", "scopes": ["a"], "token_ttl_seconds": 1.0},
    {"name": "n", "scopes": ["a"], "token_ttl_seconds": "60"},
    {"name": "n", "scopes": ["a"], "token_ttl_seconds": True},
    {"name": "n", "scopes": ["a"], "token_ttl_seconds": None},
    {"name": "n", "scopes": ["a"], "token_ttl_seconds": 2147483648},
]


def test_create_validation_422_before_authentication(authd):
    inst, admin = start(authd)
    for body in BAD_CREATE_BODIES:
        # Without credentials: validation runs first (api-admin §2.1).
        assert_422(inst.post("/admin/clients", json=body))
        assert_422(inst.post("/admin/clients", json=body, headers=admin["headers"]))
    for raw, ctype in [(b"{", "application/json"), (b"[]", "application/json"),
                       (b'{"name":"a","name":"b","scopes":["a"]}', "application/json"),
                       (b"", "application/json"),
                       (b'{"name":"a","scopes":["a"]}', "text/plain")]:
        assert_422(inst.post("/admin/clients", content=raw, headers={"Content-Type": ctype}))
    assert inst.get("/admin/clients", headers=admin["headers"]).json()["data"] == []


def test_validation_detail_is_exact_outside_development(authd):
    inst = authd({"APP__ENVIRONMENT": "production", **PROD_ENV})
    r = inst.post("/admin/clients", json={"name": "n", "scopes": []})
    assert r.status_code == 422 and r.json() == INVALID
    r = inst.request("PATCH", "/admin/clients/not-a-uuid", json={})
    assert r.status_code == 422 and r.json() == INVALID
    r = inst.get("/admin/clients", params={"cursor": "garbage"})
    assert r.status_code == 422 and r.json() == INVALID
    # A valid request without credentials is a 401 there too; the bootstrap
    # key is not honoured outside development.
    r = inst.get("/admin/clients", headers=BOOT)
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token.", "code": "invalid_token"}


def test_authentication_and_roles(authd, world):
    inst, admin = start(authd)
    c = create(inst, admin["headers"])
    some = str(uuid.uuid4())
    calls = [("GET", "/admin/clients", None),
             ("POST", "/admin/clients", {"name": "n", "scopes": ["a"]}),
             ("PATCH", f"/admin/clients/{c['id']}", {"name": "m"}),
             ("POST", f"/admin/clients/{c['id']}/rotate-secret", None),
             ("DELETE", f"/admin/clients/{some}", None)]
    uid = create_admin(inst, "plain@example.com")
    set_role(inst, world, uid, "user")
    user_h = {"Authorization": f"Bearer {login_tokens(inst, 'plain@example.com')['access_token']}"}
    for method, path, body in calls:
        kw = {"json": body} if body is not None else {}
        r = inst.request(method, path, **kw)
        assert r.status_code == 401 and r.json() == {"detail": "Invalid token.",
                                                     "code": "invalid_token"}, (method, path)
        assert r.headers["cache-control"] == "no-store"
        r = inst.request(method, path, headers={"Authorization": "Bearer nope"}, **kw)
        assert r.status_code == 401 and r.json()["code"] == "invalid_token"
        r = inst.request(method, path, headers={"X-Admin-API-Key": "wrong"}, **kw)
        assert r.status_code == 401 and r.json()["code"] == "invalid_token"
        r = inst.request(method, path, headers=user_h, **kw)
        assert r.status_code == 403 and r.json() == {"detail": "Insufficient role.",
                                                     "code": "insufficient_role"}, (method, path)
        assert r.headers["cache-control"] == "no-store"
    # Nothing changed through the refused calls.
    got = inst.get("/admin/clients", headers=admin["headers"]).json()["data"]
    assert [x["name"] for x in got] == ["svc"]

    # The development bootstrap key is an admin for these ungated routes.
    b = create(inst, BOOT, name="boot")
    assert inst.get("/admin/clients", headers=BOOT).status_code == 200
    assert inst.request("PATCH", f"/admin/clients/{b['id']}", json={"name": "b2"},
                        headers=BOOT).json()["name"] == "b2"
    assert inst.post(f"/admin/clients/{b['id']}/rotate-secret", headers=BOOT).status_code == 200
    assert inst.delete(f"/admin/clients/{b['id']}", headers=BOOT).status_code == 200

    # R1: a demoted admin loses access at once, with the same token.
    set_role(inst, world, admin["user_id"], "user")
    r = inst.get("/admin/clients", headers=admin["headers"])
    assert r.status_code == 403 and r.json()["code"] == "insufficient_role"


def test_list_pagination_and_filters(authd):
    inst, admin = start(authd)
    h = admin["headers"]
    made = [create(inst, h, name=f"c{i}", scopes=[f"s{i}"]) for i in range(7)]
    # Newest first, no skips, no repeats, across pages of 3.
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = inst.get("/admin/clients", params=params, headers=h)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        page = r.json()
        assert list(page) == ["data", "next_cursor", "has_more"]
        pages += 1
        for item in page["data"]:
            assert list(item) == CLIENT_FIELDS
            assert "client_secret" not in item
        seen += page["data"]
        assert (page["next_cursor"] is not None) == page["has_more"]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
        # The cursor is api-admin §4.3's: padded base64url of sorted compact JSON.
        decoded = json.loads(base64.urlsafe_b64decode(cursor))
        assert list(decoded) == ["created_at", "id"] and decoded["id"] == page["data"][-1]["id"]
        assert decoded["created_at"].endswith("+00:00")
    assert pages == 3
    assert [x["id"] for x in seen] == [c["id"] for c in reversed(made)]
    # Same list in one page; the default limit covers it.
    assert [x["id"] for x in inst.get("/admin/clients", headers=h).json()["data"]] == \
        [x["id"] for x in seen]
    # An unpadded cursor is accepted too.
    first = inst.get("/admin/clients", params={"limit": 2}, headers=h).json()
    unpadded = first["next_cursor"].rstrip("=")
    nxt = inst.get("/admin/clients", params={"limit": 2, "cursor": unpadded}, headers=h).json()
    assert nxt["data"][0]["id"] == seen[2]["id"]

    # active filter: exact match on is_active; deleted clients never listed.
    for c in made[:2]:
        r = inst.request("PATCH", f"/admin/clients/{c['id']}", json={"is_active": False}, headers=h)
        assert r.status_code == 200
    assert inst.delete(f"/admin/clients/{made[2]['id']}", headers=h).status_code == 200
    for v in ["true", "TRUE", "1", "yes", "on", "t", "Y"]:
        ids = [x["id"] for x in inst.get("/admin/clients", params={"active": v}, headers=h).json()["data"]]
        assert ids == [c["id"] for c in reversed(made[3:])], v
    for v in ["false", "0", "No", "off", "f", "n"]:
        ids = [x["id"] for x in inst.get("/admin/clients", params={"active": v}, headers=h).json()["data"]]
        assert ids == [made[1]["id"], made[0]["id"]], v
    assert len(inst.get("/admin/clients", headers=h).json()["data"]) == 6
    # Paging with the filter.
    p1 = inst.get("/admin/clients", params={"active": "true", "limit": 3}, headers=h).json()
    assert p1["has_more"] is True and len(p1["data"]) == 3
    p2 = inst.get("/admin/clients", params={"active": "true", "limit": 3,
                                            "cursor": p1["next_cursor"]}, headers=h).json()
    assert p2["has_more"] is False and p2["next_cursor"] is None and len(p2["data"]) == 1


def test_list_query_validation(authd):
    inst, admin = start(authd)
    bad_cursor = base64.urlsafe_b64encode(b'{"created_at":"yesterday","id":"x"}').decode()
    no_id = base64.urlsafe_b64encode(b'{"created_at":"2026-01-01T00:00:00+00:00"}').decode()
    for params in [{"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"limit": "1.5"},
                   {"limit": ""}, {"active": "maybe"}, {"active": ""}, {"cursor": "%%%"},
                   {"cursor": "bm90IGpzb24="}, {"cursor": bad_cursor}, {"cursor": no_id}]:
        assert_422(inst.get("/admin/clients", params=params))
        assert_422(inst.get("/admin/clients", params=params, headers=admin["headers"]))
    for limit in (1, 200):
        assert inst.get("/admin/clients", params={"limit": limit},
                        headers=admin["headers"]).status_code == 200


def test_patch(authd):
    inst, admin = start(authd)
    h = admin["headers"]
    c = create(inst, h, scopes=["read", "write"])
    path = f"/admin/clients/{c['id']}"
    r = inst.request("PATCH", path, json={"name": "  renamed ", "scopes": ["x", " y ", "x", ""],
                                          "token_ttl_seconds": 60, "is_active": False}, headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    got = r.json()
    assert list(got) == CLIENT_FIELDS
    assert got == {**{k: c[k] for k in CLIENT_FIELDS}, "name": "renamed", "scopes": ["x", "y"],
                   "token_ttl_seconds": 60, "is_active": False}
    # Null and absent members leave the stored values alone.
    for body in [{}, {"name": None, "scopes": None, "token_ttl_seconds": None, "is_active": None},
                 {"unknown": 1}]:
        r = inst.request("PATCH", path, json=body, headers=h)
        assert r.status_code == 200 and r.json() == got, body
    r = inst.request("PATCH", path, json={"is_active": True}, headers=h)
    assert r.json()["is_active"] is True and r.json()["name"] == "renamed"
    # Every accepted UUID spelling of the path.
    for spelling in [c["id"].upper(), c["id"].replace("-", ""), c["id"].replace("-", "").upper()]:
        r = inst.request("PATCH", f"/admin/clients/{spelling}", json={}, headers=h)
        assert r.status_code == 200 and r.json()["id"] == c["id"]

    # 400s of create apply.
    r = inst.request("PATCH", path, json={"name": "  "}, headers=h)
    assert r.status_code == 400 and r.json() == {"detail": "Client name is required.",
                                                 "code": "invalid_credentials"}
    for scopes in [[], [" "]]:
        r = inst.request("PATCH", path, json={"scopes": scopes}, headers=h)
        assert r.status_code == 400 and r.json() == {"detail": "At least one scope is required.",
                                                     "code": "invalid_scope"}
    assert inst.request("PATCH", path, json={}, headers=h).json()["scopes"] == ["x", "y"]

    # 404: unknown id (before any 400), then a deleted client.
    other = f"/admin/clients/{uuid.uuid4()}"
    for body in [{}, {"name": "  "}]:
        r = inst.request("PATCH", other, json=body, headers=h)
        assert r.status_code == 404 and r.json() == NOT_FOUND
    assert inst.delete(path, headers=h).status_code == 200
    r = inst.request("PATCH", path, json={"is_active": True}, headers=h)
    assert r.status_code == 404 and r.json() == NOT_FOUND

    # 422s, with and without credentials.
    live = create(inst, h)
    lpath = f"/admin/clients/{live['id']}"
    for body in [{"is_active": "false"}, {"is_active": 0}, {"token_ttl_seconds": 1.0},
                 {"token_ttl_seconds": 0}, {"token_ttl_seconds": "5"}, {"scopes": "x"},
                 {"scopes": [5]}, {"name": 5}, {"name": "z" * 256}, {"name": ["a"]}]:
        assert_422(inst.request("PATCH", lpath, json=body))
        assert_422(inst.request("PATCH", lpath, json=body, headers=h))
    for raw in [b"", b"[]", b"null", b"{", b'{"name":"a","name":"b"}']:
        assert_422(inst.request("PATCH", lpath, content=raw,
                                headers={**h, "Content-Type": "application/json"}))
    for bad in ["nope", "1234", c["id"] + "0", c["id"][:-1] + "g"]:
        assert_422(inst.request("PATCH", f"/admin/clients/{bad}", json={}))
        assert_422(inst.request("PATCH", f"/admin/clients/{bad}", json={}, headers=h))
    assert inst.request("PATCH", lpath, json={}, headers=h).json()["name"] == "svc"


def test_rotate_secret_and_delete(authd):
    inst, admin = start(authd)
    h = admin["headers"]
    c = create(inst, h)
    r = inst.post(f"/admin/clients/{c['id']}/rotate-secret", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    rot = r.json()
    assert list(rot) == ["id", "client_id", "client_secret", "client_secret_prefix"]
    assert rot["id"] == c["id"] and rot["client_id"] == c["client_id"]
    assert SECRET_RE.match(rot["client_secret"]) and rot["client_secret"] != c["client_secret"]
    assert rot["client_secret_prefix"] == rot["client_secret"][:8]
    listed = inst.get("/admin/clients", headers=h).json()["data"][0]
    assert listed["client_secret_prefix"] == rot["client_secret_prefix"]
    # A body is not needed and not looked at.
    r = inst.post(f"/admin/clients/{c['id']}/rotate-secret", headers=h, json={"x": 1})
    assert r.status_code == 200
    r = inst.post(f"/admin/clients/{uuid.uuid4()}/rotate-secret", headers=h)
    assert r.status_code == 404 and r.json() == NOT_FOUND
    assert_422(inst.post("/admin/clients/zzz/rotate-secret"))
    assert_422(inst.post("/admin/clients/zzz/rotate-secret", headers=h))

    # DELETE: soft delete, answer shows is_active false; then 404 everywhere.
    r = inst.delete(f"/admin/clients/{c['id']}", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    d = r.json()
    assert list(d) == CLIENT_FIELDS
    assert d["is_active"] is False and d["id"] == c["id"] and d["name"] == "svc"
    for method, path in [("DELETE", f"/admin/clients/{c['id']}"),
                         ("POST", f"/admin/clients/{c['id']}/rotate-secret"),
                         ("DELETE", f"/admin/clients/{uuid.uuid4()}")]:
        r = inst.request(method, path, headers=h)
        assert r.status_code == 404 and r.json() == NOT_FOUND
    assert inst.get("/admin/clients", headers=h).json()["data"] == []

    # The optional DELETE body: empty or a JSON object; anything else is 422.
    c2 = create(inst, h)
    for raw, ctype in [(b"[]", "application/json"), (b"{", "application/json"),
                       (b"null", "application/json"), (b"{}", "text/plain")]:
        assert_422(inst.request("DELETE", f"/admin/clients/{c2['id']}", content=raw,
                                headers={**h, "Content-Type": ctype}))
    assert_422(inst.delete("/admin/clients/not-a-uuid"))
    r = inst.request("DELETE", f"/admin/clients/{c2['id']}", content=b'{"reason":"x"}',
                     headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["is_active"] is False


def test_admin_audit_rows(authd, world):
    inst, admin = start(authd)
    h = admin["headers"]
    c = create(inst, h, scopes=["a", "b"])
    inst.request("PATCH", f"/admin/clients/{c['id']}",
                 json={"is_active": False, "token_ttl_seconds": 10}, headers=h)
    inst.post(f"/admin/clients/{c['id']}/rotate-secret", headers=h)
    inst.delete(f"/admin/clients/{c['id']}", headers=h)
    b = create(inst, BOOT, name="boot", scopes=["z"])
    rows = audit_rows(inst, world, expect=5)
    assert [r["event_type"] for r in rows] == ["client.created", "client.updated.success",
                                               "client.secret_rotated", "client.deleted.success",
                                               "client.created"]
    for r in rows:
        assert r["actor_type"] == "admin" and r["target_type"] == "oauth_client"
        assert r["success"] is True and r["failure_reason"] is None
    for r in rows[:4]:
        assert r["actor_id"] == admin["user_id"] and r["target_id"] == c["id"]
    assert rows[0]["metadata"] == {"client_id": c["client_id"], "scopes": ["a", "b"]}
    assert rows[1]["metadata"] == {"client_id": c["client_id"], "scopes": ["a", "b"],
                                   "is_active": False, "token_ttl_seconds": "***REDACTED***"}
    assert rows[2]["metadata"] == {"client_id": c["client_id"]}
    assert rows[3]["metadata"] == {"client_id": c["client_id"]}
    # The bootstrap principal is stored as a null actor.
    assert rows[4]["actor_id"] is None and rows[4]["target_id"] == b["id"]
    assert rows[4]["metadata"] == {"client_id": b["client_id"], "scopes": ["z"]}
    # No secret in any audit row.
    dump = repr(sql(inst, world, "SELECT * FROM audit_events"))
    assert c["client_secret"] not in dump and b["client_secret"] not in dump


@pytest.mark.parametrize("method,path", [("PUT", "/admin/clients"),
                                         ("GET", "/admin/clients/00000000-0000-0000-0000-000000000000"),
                                         ("GET", "/admin/clients/x/rotate-secret")])
def test_unsupported_methods(authd, method, path):
    inst, _ = start(authd, admin=False)
    r = inst.request(method, path, headers=BOOT)
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert r.headers["cache-control"] == "no-store"
