"""API keys: /auth/apikeys (api-core §10) and /admin/api-keys (api-admin §8.1–§8.3).

Introspection of the keys lives in test_introspect.py. Set-up that has no API
yet (soft-deleting a user or a key, demoting an admin) goes through
adminlib.sql; audit rows are read from audit_events the same way (there is
no audit-log API yet)."""

import base64
import hashlib
import json
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from adminlib import (BOOTSTRAP_KEY, audit, create_admin, login_tokens, make_admin, rows,
                      set_role, sql)
from harness import PROD_ENV, wait_until

BOOT = {"X-Admin-API-Key": BOOTSTRAP_KEY}
INVALID = {"detail": "Invalid request payload.", "code": "invalid_credentials"}
NO_TOKEN = {"detail": "Invalid token.", "code": "invalid_token"}
NO_ROLE = {"detail": "Insufficient role.", "code": "insufficient_role"}
NOT_FOUND = {"detail": "API key not found.", "code": "invalid_api_key"}
RAW_KEY_RE = re.compile(r"^sk_[A-Za-z0-9_-]{43}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STYLE_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
STYLE_O = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")

CREATED_FIELDS = ["key_id", "api_key", "key_prefix", "name", "service", "scope", "user_id",
                  "expires_at", "created_at"]
ADMIN_CREATED_FIELDS = [f for f in CREATED_FIELDS if f != "user_id"]
LIST_FIELDS = ["key_id", "key_prefix", "name", "service", "scope", "user_id", "expires_at",
               "revoked_at", "created_at"]
ADMIN_LIST_FIELDS = [f for f in LIST_FIELDS if f != "user_id"]

# (method, path, json body) of every admin-authenticated route, with valid input.
ZERO = "00000000-0000-4000-8000-000000000000"
ROUTES = [
    ("POST", "/auth/apikeys", {"name": "n", "scope": "s"}),
    ("GET", "/auth/apikeys", None),
    ("POST", f"/auth/apikeys/{ZERO}/revoke", None),
    ("GET", "/admin/api-keys", None),
    ("POST", "/admin/api-keys", {"name": "n", "scope": "s"}),
    ("DELETE", f"/admin/api-keys/{ZERO}", None),
]


# ---- helpers ---------------------------------------------------------------

@pytest.fixture
def inst(authd):
    """Development instance with the bootstrap key configured."""
    return authd({"ADMIN_API_KEY": BOOTSTRAP_KEY})


def call(inst, method, path, body=None, headers=None, **kw):
    return inst.request(method, path, json=body, headers=headers, **kw)


def create(inst, body, headers=BOOT, path="/auth/apikeys"):
    r = inst.post(path, json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def parse_ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_user(inst, email):
    """A plain (non-admin) user: created verified by create-admin, then demoted."""
    from adminlib import ADMIN_PW
    uid = create_admin(inst, email, ADMIN_PW)
    return uid


def user_token(inst, world, email="user@example.com"):
    uid = make_user(inst, email)
    set_role(inst, world, uid, "user")
    t = login_tokens(inst, email)
    return uid, {"Authorization": f"Bearer {t['access_token']}"}


# ---- caller authentication (api-core §10.1, api-admin §2.1, R1) --------------

@pytest.mark.parametrize("method,path,body", ROUTES)
def test_no_credential_is_401(inst, method, path, body):
    r = call(inst, method, path, body)
    assert r.status_code == 401 and r.json() == NO_TOKEN
    for hdr in ({"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic abc"},
                {"X-Admin-API-Key": "wrong-key"}, {"X-Admin-API-Key": ""}):
        r = call(inst, method, path, body, headers=hdr)
        assert r.status_code == 401 and r.json() == NO_TOKEN, hdr


def test_non_admin_is_403_on_every_route(inst, world):
    _, hdr = user_token(inst, world)
    for method, path, body in ROUTES:
        r = call(inst, method, path, body, headers=hdr)
        assert r.status_code == 403 and r.json() == NO_ROLE, (method, path, r.text)


def test_admin_token_works_and_demotion_is_immediate(inst, world):
    admin = make_admin(inst)
    k = create(inst, {"name": "n", "scope": "s"}, headers=admin["headers"])
    for method, path, body in ROUTES:
        path = path.replace(ZERO, k["key_id"])
        r = call(inst, method, path, body, headers=admin["headers"])
        assert r.status_code == 200, (method, path, r.text)
    set_role(inst, world, admin["user_id"], "user")       # the token still says admin
    for method, path, body in ROUTES:
        r = call(inst, method, path, body, headers=admin["headers"])
        assert r.status_code == 403 and r.json() == NO_ROLE, (method, path)


def test_deactivated_admin_is_403(inst, world):
    from adminlib import deactivate
    admin = make_admin(inst)
    assert inst.get("/auth/apikeys", headers=admin["headers"]).status_code == 200
    deactivate(inst, world, admin["user_id"])
    r = inst.get("/auth/apikeys", headers=admin["headers"])
    assert r.status_code == 403 and r.json() == NO_ROLE


def test_bootstrap_key_in_development(inst):
    for method, path, body in ROUTES:
        r = call(inst, method, path, body, headers=BOOT)
        assert r.status_code in (200, 404), (method, path, r.text)  # the two revokes: no key
    r = inst.get("/auth/apikeys", headers={"X-Admin-API-Key": BOOTSTRAP_KEY + "x"})
    assert r.status_code == 401 and r.json() == NO_TOKEN
    # the header is trimmed (raw request: httpx refuses to send the spaces)
    raw = inst.raw(f"GET /auth/apikeys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"X-Admin-API-Key:   {BOOTSTRAP_KEY}   \r\nConnection: close\r\n\r\n".encode())
    assert raw is not None and raw.status == 200


def test_bootstrap_key_needs_admin_api_key_configured(authd):
    inst = authd()                                           # development, no ADMIN_API_KEY
    r = inst.get("/auth/apikeys", headers=BOOT)
    assert r.status_code == 401 and r.json() == NO_TOKEN


def test_bootstrap_key_ignored_in_staging(authd):
    inst = authd({"APP__ENVIRONMENT": "staging", "ADMIN_API_KEY": BOOTSTRAP_KEY})
    for method, path, body in ROUTES:
        r = call(inst, method, path, body, headers=BOOT)
        assert r.status_code == 401 and r.json() == NO_TOKEN, (method, path)
    # validation still comes first, with the exact staging detail (R11)
    r = inst.post("/auth/apikeys", json={"name": "n"}, headers=BOOT)
    assert r.status_code == 422 and r.json() == INVALID
    r = inst.get("/admin/api-keys?cursor=%%%", headers=BOOT)
    assert r.status_code == 422 and r.json() == INVALID


def test_bootstrap_key_ignored_in_production(authd):
    # ADMIN_API_KEY is refused by the production guardrails, so the header has
    # nothing to match; it must not open anything either.
    inst = authd({"APP__ENVIRONMENT": "production", **PROD_ENV})
    for method, path, body in ROUTES:
        r = call(inst, method, path, body, headers=BOOT)
        assert r.status_code == 401 and r.json() == NO_TOKEN, (method, path)


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/auth/apikeys", {"name": "n"}),
    ("POST", "/auth/apikeys", {"name": "n", "scope": 1}),
    ("GET", "/auth/apikeys?active=maybe", None),
    ("GET", "/auth/apikeys?user_id=nope", None),
    ("POST", "/auth/apikeys/not-a-uuid/revoke", None),
    ("GET", "/admin/api-keys?limit=0", None),
    ("GET", "/admin/api-keys?cursor=abc", None),
    ("POST", "/admin/api-keys", {"scope": "s"}),
    ("DELETE", "/admin/api-keys/123", None),
])
def test_validation_precedes_authentication(inst, method, path, body):
    r = call(inst, method, path, body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_credentials"
    assert r.json()["detail"].startswith("Invalid request payload")


def test_no_store_headers(inst):
    k = create(inst, {"name": "n", "scope": "s"})
    for method, path, body, hdr in [
        ("POST", "/auth/apikeys", {"name": "n", "scope": "s"}, BOOT),
        ("GET", "/auth/apikeys", None, BOOT),
        ("GET", "/auth/apikeys", None, {}),                               # 401
        ("POST", f"/auth/apikeys/{k['key_id']}/revoke", None, BOOT),
        ("POST", f"/auth/apikeys/{ZERO}/revoke", None, BOOT),             # 404
        ("GET", "/admin/api-keys", None, BOOT),
        ("GET", "/admin/api-keys?limit=500", None, BOOT),                 # 422
        ("POST", "/admin/api-keys", {"name": "n", "scope": "s"}, BOOT),
        ("DELETE", f"/admin/api-keys/{k['key_id']}", None, BOOT),
        ("DELETE", f"/admin/api-keys/{ZERO}", None, {}),                  # 401
    ]:
        r = call(inst, method, path, body, headers=hdr)
        assert r.headers.get("cache-control") == "no-store", (method, path, r.status_code)
        assert r.headers.get("pragma") == "no-cache", (method, path)


# ---- POST /auth/apikeys (§10.2) ------------------------------------------------

def test_create_shape_and_raw_key(inst, world):
    r = inst.post("/auth/apikeys", headers=BOOT,
                  json={"name": "  Orders  ", "service": " orders-svc ",
                        "scope": " orders:read,orders:write ", "extra": [1, {"x": 2}]})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == CREATED_FIELDS
    assert UUID_RE.match(body["key_id"])
    raw = body["api_key"]
    assert RAW_KEY_RE.match(raw) and len(raw) == 46
    assert body["key_prefix"] == raw[:8]
    assert (body["name"], body["service"], body["scope"]) == \
        ("Orders", "orders-svc", "orders:read,orders:write")
    assert body["user_id"] is None and body["expires_at"] is None
    assert STYLE_Z.match(body["created_at"])
    assert abs(parse_ts(body["created_at"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)
    # the database holds the digest and the prefix, never the raw key
    (row,) = rows(inst, world, f"SELECT * FROM api_keys WHERE id = '{body['key_id']}'")
    assert hashlib.sha256(raw.encode()).hexdigest() in row
    assert body["key_prefix"] in row
    assert not [v for v in row if v and raw in v]
    # and never again in any answer
    listed = inst.get("/auth/apikeys", headers=BOOT).text
    assert raw not in listed and raw not in inst.get("/admin/api-keys", headers=BOOT).text


def test_raw_keys_are_fresh(inst):
    keys = {create(inst, {"name": f"k{i}", "scope": "s"})["api_key"] for i in range(5)}
    assert len(keys) == 5


@pytest.mark.parametrize("body,name,service", [
    ({"name": "N", "scope": "orders:read,orders:write"}, "N", "orders"),
    ({"service": "svc", "scope": "a:b"}, "svc", "svc"),
    ({"name": "N", "service": "  ", "scope": " billing : read , x"}, "N", "billing"),
    ({"name": "N", "service": None, "scope": "plain"}, "N", "plain"),
    ({"name": "N", "scope": ":read"}, "N", "N"),
    ({"name": "N", "scope": " , orders:read"}, "N", "N"),
    ({"name": None, "service": " S ", "scope": "x:y"}, "S", "S"),
    ({"name": "N", "service": "explicit", "scope": "orders:read"}, "N", "explicit"),
])
def test_name_and_service_resolution(inst, body, name, service):
    k = create(inst, body)
    assert (k["name"], k["service"]) == (name, service)


@pytest.mark.parametrize("body,detail", [
    ({"name": "N", "scope": "   "}, "Scope is required."),
    ({"name": "  ", "scope": "   "}, "Scope is required."),       # scope is checked first
    ({"name": "   ", "scope": "s"}, "Name is required."),
    ({"name": "\t", "service": "svc", "scope": "s"}, "Name is required."),  # name wins over service
    ({"service": "  ", "scope": "s"}, "Name is required."),
    ({"name": None, "service": " ", "scope": "s"}, "Name is required."),
])
def test_create_blank_fields_are_400(inst, world, body, detail):
    r = inst.post("/auth/apikeys", json=body, headers=BOOT)
    assert r.status_code == 400 and r.json() == {"detail": detail, "code": "invalid_api_key"}
    assert rows(inst, world, "SELECT count(*) FROM api_keys") == [["0"]]


def test_create_bound_to_user(inst, world):
    uid = make_user(inst, "owner@example.com")
    for form in (uid, uid.upper(), uid.replace("-", "")):
        k = create(inst, {"name": "n", "scope": "s", "user_id": form})
        assert k["user_id"] == uid
    r = inst.post("/auth/apikeys", headers=BOOT,
                  json={"name": "n", "scope": "s", "user_id": str(uuid.uuid4())})
    assert r.status_code == 404 and r.json() == {"detail": "User not found.",
                                                 "code": "invalid_user"}
    # a soft-deleted user counts as gone (data-model §1: deleted rows are invisible)
    sql(inst, world, f"UPDATE users SET deleted_at = updated_at WHERE id = '{uid}'")
    r = inst.post("/auth/apikeys", json={"name": "n", "scope": "s", "user_id": uid}, headers=BOOT)
    assert r.status_code == 404 and r.json()["code"] == "invalid_user"


def test_create_for_inactive_user_is_allowed(inst, world):
    from adminlib import deactivate
    uid = make_user(inst, "sleepy@example.com")
    deactivate(inst, world, uid)
    assert create(inst, {"name": "n", "scope": "s", "user_id": uid})["user_id"] == uid


def test_expires_at_forms(inst):
    cases = [
        ("2030-05-01T12:00:00Z", "2030-05-01T12:00:00Z"),
        ("2030-05-01T12:00:00", "2030-05-01T12:00:00Z"),               # naive = UTC
        ("2030-05-01 12:00:00.5", "2030-05-01T12:00:00.500000Z"),
        ("2030-05-01T14:30:00+02:30", "2030-05-01T12:00:00Z"),
        ("2030-05-01T12:00:00.123456-01:00", "2030-05-01T13:00:00.123456Z"),
        ("2001-01-01T00:00:00Z", "2001-01-01T00:00:00Z"),              # past: born expired
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        (None, None),
    ]
    for given, echoed in cases:
        k = create(inst, {"name": "n", "scope": "s", "expires_at": given})
        assert k["expires_at"] == echoed, given


LONG = "x" * 129
WIDE = "é" * 128                  # 128 code points, 256 bytes: fits


@pytest.mark.parametrize("body", [
    {"name": "n"},                                            # scope missing
    {"name": "n", "scope": None},
    {"name": "n", "scope": ""},
    {"name": "n", "scope": LONG},
    {"name": LONG, "scope": "s"},
    {"service": LONG, "scope": "s"},
    {"name": "", "scope": "s"},
    {"service": "", "scope": "s"},
    {"scope": "s"},                                           # neither name nor service
    {"name": None, "service": None, "scope": "s"},
    {"name": 1, "scope": "s"},
    {"name": ["n"], "scope": "s"},
    {"name": "n", "scope": {"a": 1}},
    {"name": "n", "scope": True},
    {"name": "n", "service": 5, "scope": "s"},
    {"name": "n", "scope": "s", "user_id": 123},
    {"name": "n", "scope": "s", "user_id": "not-a-uuid"},
    {"name": "n", "scope": "s", "user_id": ""},
    {"name": "n", "scope": "s", "expires_at": 1700000000},
    {"name": "n", "scope": "s", "expires_at": "tomorrow"},
    {"name": "n", "scope": "s", "expires_at": "2030-02-30"},
    {"name": "n", "scope": "s", "expires_at": "2030-13-01T00:00:00Z"},
    {"name": "n", "scope": "s", "expires_at": "0999-12-31T00:00:00Z"},  # outside 1000..9999
    {"name": "n", "scope": "s", "expires_at": "9999-12-31T23:00:00-02:00"},
])
def test_create_422(inst, world, body):
    r = inst.post("/auth/apikeys", json=body, headers=BOOT)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_credentials"
    assert rows(inst, world, "SELECT count(*) FROM api_keys") == [["0"]]


def test_create_lengths_in_code_points(inst):
    k = create(inst, {"name": WIDE, "service": WIDE, "scope": WIDE})
    assert (k["name"], k["service"], k["scope"]) == (WIDE, WIDE, WIDE)


@pytest.mark.parametrize("raw,ctype", [
    (b"{", "application/json"),
    (b"[]", "application/json"),
    (b'"x"', "application/json"),
    (b"", "application/json"),
    (b'{"name":"a","name":"b","scope":"s"}', "application/json"),
    (b'{"name":"n","scope":"s"}', "text/plain"),
    (b'{"name":"n","scope":"s"}', "application/x-www-form-urlencoded"),
    (b'{"name":"\xff","scope":"s"}', "application/json"),
])
def test_create_bad_body(inst, raw, ctype):
    for path in ("/auth/apikeys", "/admin/api-keys"):
        r = inst.post(path, content=raw, headers={**BOOT, "Content-Type": ctype})
        assert r.status_code == 422 and r.json()["code"] == "invalid_credentials", (path, raw)


def test_json_suffix_content_type_accepted(inst):
    r = inst.post("/auth/apikeys", content=b'{"name":"n","scope":"s"}',
                  headers={**BOOT, "Content-Type": "application/vnd.api+json; charset=utf-8"})
    assert r.status_code == 200, r.text


# ---- GET /auth/apikeys (§10.3) ------------------------------------------------

def test_list_order_shape_and_filters(inst, world):
    uid = make_user(inst, "lister@example.com")
    past = iso(datetime.now(timezone.utc) - timedelta(days=1))
    future = iso(datetime.now(timezone.utc) + timedelta(days=1))
    a = create(inst, {"name": "alpha", "scope": "orders:read", "user_id": uid})
    b = create(inst, {"name": "beta", "service": "billing", "scope": "billing:read"})
    c = create(inst, {"name": "gamma", "scope": "orders:read", "expires_at": past})
    d = create(inst, {"name": "delta", "scope": "orders:read", "expires_at": future,
                      "user_id": uid})
    e = create(inst, {"name": "eps", "scope": "x"})
    assert inst.post(f"/auth/apikeys/{e['key_id']}/revoke", headers=BOOT).status_code == 200

    r = inst.get("/auth/apikeys", headers=BOOT)
    assert r.status_code == 200
    items = r.json()
    assert isinstance(items, list)
    assert [i["key_id"] for i in items] == [x["key_id"] for x in (e, d, c, b, a)]
    for it in items:
        assert list(it) == LIST_FIELDS
        assert STYLE_Z.match(it["created_at"])
    by_id = {i["key_id"]: i for i in items}
    assert by_id[a["key_id"]]["user_id"] == uid and by_id[b["key_id"]]["user_id"] is None
    assert by_id[c["key_id"]]["expires_at"] == c["expires_at"]
    assert STYLE_Z.match(by_id[e["key_id"]]["revoked_at"])
    assert by_id[a["key_id"]]["revoked_at"] is None
    assert {k: by_id[a["key_id"]][k] for k in ("key_prefix", "name", "service", "scope")} == \
        {k: a[k] for k in ("key_prefix", "name", "service", "scope")}

    def ids(query):
        r = inst.get("/auth/apikeys" + query, headers=BOOT)
        assert r.status_code == 200, (query, r.text)
        return [i["key_id"] for i in r.json()]

    assert ids(f"?user_id={uid}") == [d["key_id"], a["key_id"]]
    assert ids(f"?user_id={uid.upper().replace('-', '')}") == [d["key_id"], a["key_id"]]
    assert ids(f"?user_id={uuid.uuid4()}") == []
    assert ids("?name=beta") == [b["key_id"]]
    assert ids("?name=bet") == [] and ids("?name=BETA") == []           # exact match
    assert ids("?service=billing") == [b["key_id"]]
    assert ids("?service=orders") == [d["key_id"], c["key_id"], a["key_id"]]
    assert ids("?scope=orders:read") == [d["key_id"], c["key_id"], a["key_id"]]
    assert ids("?scope=orders") == []
    for v in ("true", "TRUE", "t", "Yes", "y", "on", "1"):
        assert ids(f"?active={v}") == [d["key_id"], b["key_id"], a["key_id"]], v
    for v in ("false", "F", "no", "N", "OFF", "0"):
        assert ids(f"?active={v}") == [e["key_id"], c["key_id"]], v
    assert ids(f"?active=true&scope=orders:read&user_id={uid}") == [d["key_id"], a["key_id"]]
    assert ids("?active=false&name=gamma") == [c["key_id"]]
    assert ids("?name=%C3%A9") == []
    # soft-deleted keys are never listed
    sql(inst, world, f"UPDATE api_keys SET deleted_at = created_at WHERE id = '{b['key_id']}'")
    assert b["key_id"] not in ids("")


@pytest.mark.parametrize("query", ["?active=maybe", "?active=", "?active=2", "?user_id=x",
                                   "?user_id=" + "0" * 31, "?name=%FF"])
def test_list_bad_query_is_422(inst, query):
    r = inst.get("/auth/apikeys" + query, headers=BOOT)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials", query


def test_list_writes_audit_row(inst, world):
    admin = make_admin(inst)
    create(inst, {"name": "n", "scope": "s"})
    r = inst.get("/auth/apikeys?active=true&scope=s", headers=admin["headers"])
    assert r.status_code == 200
    (row,) = audit(inst, world, "api_key.used")
    assert row["actor_id"] == admin["user_id"] and row["actor_type"] == "admin"
    assert row["target_id"] is None and row["target_type"] == "api_key_collection"
    assert row["success"] is True and row["failure_reason"] is None
    assert row["metadata"] == {"operation": "list", "name": None, "service": None, "scope": "s",
                               "active": True, "result_count": 1}


# ---- POST /auth/apikeys/{key_id}/revoke (§10.4) ---------------------------------

def test_revoke_idempotent_keeps_first_revoked_at(inst):
    k = create(inst, {"name": "n", "scope": "s"})
    r = inst.post(f"/auth/apikeys/{k['key_id']}/revoke", headers=BOOT)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["detail", "code", "key_id", "revoked_at"]
    assert body["detail"] == "API key revoked." and body["code"] == "revoked_api_key"
    assert body["key_id"] == k["key_id"] and STYLE_O.match(body["revoked_at"])
    time.sleep(0.01)
    form = k["key_id"].upper().replace("-", "")
    again = inst.post(f"/auth/apikeys/{form}/revoke", headers=BOOT)
    assert again.status_code == 200 and again.json() == body
    # the admin route sees the same instant, in style Z
    d = inst.delete(f"/admin/api-keys/{k['key_id']}", headers=BOOT)
    assert d.status_code == 200
    assert parse_ts(d.json()["revoked_at"]) == parse_ts(body["revoked_at"])
    (item,) = inst.get("/auth/apikeys", headers=BOOT).json()
    assert item["revoked_at"] == d.json()["revoked_at"]


def test_revoke_unknown_or_deleted_is_404(inst, world):
    r = inst.post(f"/auth/apikeys/{uuid.uuid4()}/revoke", headers=BOOT)
    assert r.status_code == 404 and r.json() == NOT_FOUND
    k = create(inst, {"name": "n", "scope": "s"})
    sql(inst, world, f"UPDATE api_keys SET deleted_at = created_at WHERE id = '{k['key_id']}'")
    r = inst.post(f"/auth/apikeys/{k['key_id']}/revoke", headers=BOOT)
    assert r.status_code == 404 and r.json() == NOT_FOUND
    r = inst.delete(f"/admin/api-keys/{k['key_id']}", headers=BOOT)
    assert r.status_code == 404 and r.json() == NOT_FOUND


@pytest.mark.parametrize("key_id", ["x", "123", "0" * 31, "g" * 32, ZERO + "0",
                                    "{" + ZERO + "}"])
def test_revoke_bad_uuid_is_422(inst, key_id):
    r = inst.post(f"/auth/apikeys/{key_id}/revoke", headers=BOOT)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials"
    r = inst.delete(f"/admin/api-keys/{key_id}", headers=BOOT)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials"


# ---- GET /admin/api-keys (api-admin §8.1, §4) ------------------------------------

def test_admin_list_envelope_and_pages(inst, world):
    uid = make_user(inst, "paged@example.com")
    made = [create(inst, {"name": f"k{i}", "scope": "p:r", "user_id": uid if i % 2 else None})
            for i in range(5)]
    # two rows with the same created_at, straddling the first page boundary of
    # limit=2: the id breaks the tie in the order and in the cursor
    sql(inst, world, f"UPDATE api_keys SET created_at = (SELECT created_at FROM api_keys WHERE "
                     f"id = '{made[3]['key_id']}') WHERE id = '{made[2]['key_id']}'")
    r = inst.get("/admin/api-keys", headers=BOOT)
    assert r.status_code == 200
    page = r.json()
    assert list(page) == ["data", "next_cursor", "has_more"]
    assert page["has_more"] is False and page["next_cursor"] is None
    assert len(page["data"]) == 5
    for it in page["data"]:
        assert list(it) == ADMIN_LIST_FIELDS                      # no user_id on admin routes
    expected = [i["key_id"] for i in page["data"]]
    assert set(expected) == {m["key_id"] for m in made}
    seen, cursor, pages = [], None, 0
    while True:
        q = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        p = inst.get("/admin/api-keys" + q, headers=BOOT).json()
        pages += 1
        seen += [i["key_id"] for i in p["data"]]
        assert (p["next_cursor"] is not None) == p["has_more"]
        if not p["has_more"]:
            break
        cursor = p["next_cursor"]
        # api-admin §4.3: padded base64url of sorted compact JSON, +00:00 timestamp
        doc = base64.urlsafe_b64decode(cursor)
        assert len(cursor) % 4 == 0
        obj = json.loads(doc)
        assert list(obj) == ["created_at", "id"] and obj["id"] == seen[-1]
        assert doc == json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        assert obj["created_at"].endswith("+00:00")
    assert seen == expected and pages == 3
    # unpadded cursors are accepted too
    first = inst.get("/admin/api-keys?limit=2", headers=BOOT).json()
    unpadded = first["next_cursor"].rstrip("=")
    r = inst.get(f"/admin/api-keys?limit=2&cursor={unpadded}", headers=BOOT)
    assert r.status_code == 200 and [i["key_id"] for i in r.json()["data"]] == expected[2:4]
    assert inst.get("/admin/api-keys?limit=200", headers=BOOT).status_code == 200
    assert inst.get("/admin/api-keys?limit=1", headers=BOOT).json()["has_more"] is True


def test_admin_list_filters(inst):
    past = iso(datetime.now(timezone.utc) - timedelta(hours=1))
    a = create(inst, {"name": "a", "scope": "s1"}, path="/admin/api-keys")
    b = create(inst, {"name": "b", "scope": "s1", "expires_at": past}, path="/admin/api-keys")
    c = create(inst, {"name": "c", "scope": "s2"})
    inst.delete(f"/admin/api-keys/{c['key_id']}", headers=BOOT)

    def ids(q):
        r = inst.get("/admin/api-keys" + q, headers=BOOT)
        assert r.status_code == 200, r.text
        return [i["key_id"] for i in r.json()["data"]]

    assert ids("?scope=s1") == [b["key_id"], a["key_id"]]
    assert ids("?scope=s") == []
    assert ids("?active=true") == [a["key_id"]]
    assert ids("?active=OFF") == [c["key_id"], b["key_id"]]
    assert ids("?active=no&scope=s1") == [b["key_id"]]
    assert ids("?name=a") == [c["key_id"], b["key_id"], a["key_id"]]       # not a filter here


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


@pytest.mark.parametrize("query", [
    "?limit=0", "?limit=201", "?limit=-1", "?limit=abc", "?limit=1.5", "?limit=",
    "?active=perhaps",
    "?cursor=%%%", "?cursor=abc", "?cursor=" + _b64([1, 2]),
    "?cursor=" + _b64({"created_at": "2026-01-01T00:00:00+00:00"}),
    "?cursor=" + _b64({"id": ZERO}),
    "?cursor=" + _b64({"created_at": "yesterday", "id": ZERO}),
    "?cursor=" + _b64({"created_at": "2026-01-01T00:00:00+00:00", "id": "nope"}),
    "?cursor=" + _b64({"created_at": 5, "id": ZERO}),
    "?cursor=" + _b64({"created_at": "0500-01-01T00:00:00+00:00", "id": ZERO}),
    "?cursor=" + "A" * 600,
])
def test_admin_list_bad_query_is_422(inst, query):
    r = inst.get("/admin/api-keys" + query, headers=BOOT)
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials", query


def test_admin_list_cursor_lenient_forms(inst):
    ks = [create(inst, {"name": f"k{i}", "scope": "s"}) for i in range(3)]
    newest = inst.get("/admin/api-keys", headers=BOOT).json()["data"]
    top = newest[0]
    # naive timestamp (= UTC) and a 32-hex uppercase id are accepted
    ts = parse_ts(top["created_at"]).strftime("%Y-%m-%dT%H:%M:%S.%f")
    cur = _b64({"created_at": ts, "id": top["key_id"].replace("-", "").upper()})
    r = inst.get(f"/admin/api-keys?cursor={cur}", headers=BOOT)
    assert r.status_code == 200
    assert [i["key_id"] for i in r.json()["data"]] == [i["key_id"] for i in newest[1:]]
    assert len(ks) == 3


# ---- POST /admin/api-keys (api-admin §8.2) -----------------------------------------

def test_admin_create(inst, world):
    uid = make_user(inst, "ignored@example.com")
    r = inst.post("/admin/api-keys", headers=BOOT,
                  json={"name": " Reports ", "scope": " reports:read , reports:write",
                        "service": "ignored", "user_id": uid, "expires_at": None})
    assert r.status_code == 200, r.text
    k = r.json()
    assert list(k) == ADMIN_CREATED_FIELDS
    assert RAW_KEY_RE.match(k["api_key"]) and k["key_prefix"] == k["api_key"][:8]
    assert (k["name"], k["service"], k["scope"]) == \
        ("Reports", "reports", "reports:read , reports:write")
    assert k["expires_at"] is None and STYLE_Z.match(k["created_at"])
    # never bound to a user, whatever the body says
    (item,) = [i for i in inst.get("/auth/apikeys", headers=BOOT).json()
               if i["key_id"] == k["key_id"]]
    assert item["user_id"] is None
    k2 = create(inst, {"name": "Fallback", "scope": ":x", "expires_at": "2031-01-01T00:00:00"},
                path="/admin/api-keys")
    assert k2["service"] == "Fallback" and k2["expires_at"] == "2031-01-01T00:00:00Z"


@pytest.mark.parametrize("body,status,detail", [
    ({"name": "n", "scope": "  "}, 400, "Scope is required."),
    ({"name": "  ", "scope": "s"}, 400, "Name is required."),
    ({"scope": "s"}, 422, None),
    ({"service": "svc", "scope": "s"}, 422, None),            # name is required here
    ({"name": None, "scope": "s"}, 422, None),
    ({"name": "n"}, 422, None),
    ({"name": "n", "scope": LONG}, 422, None),
    ({"name": LONG, "scope": "s"}, 422, None),
    ({"name": "n", "scope": "s", "expires_at": "soon"}, 422, None),
    ({"name": "n", "scope": ["s"]}, 422, None),
])
def test_admin_create_errors(inst, body, status, detail):
    r = inst.post("/admin/api-keys", json=body, headers=BOOT)
    assert r.status_code == status, r.text
    if detail:
        assert r.json() == {"detail": detail, "code": "invalid_api_key"}
    else:
        assert r.json()["code"] == "invalid_credentials"


# ---- DELETE /admin/api-keys/{key_id} (api-admin §8.3) ---------------------------------

def test_admin_delete(inst):
    k = create(inst, {"name": "n", "scope": "s"}, path="/admin/api-keys")
    r = inst.delete(f"/admin/api-keys/{k['key_id']}", headers=BOOT)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["key_id", "revoked_at"] and body["key_id"] == k["key_id"]
    assert STYLE_Z.match(body["revoked_at"])
    time.sleep(0.01)
    assert inst.delete(f"/admin/api-keys/{k['key_id']}", headers=BOOT).json() == body
    r = inst.delete(f"/admin/api-keys/{uuid.uuid4()}", headers=BOOT)
    assert r.status_code == 404 and r.json() == NOT_FOUND


def test_admin_delete_optional_body(inst):
    k = create(inst, {"name": "n", "scope": "s"}, path="/admin/api-keys")
    url = f"/admin/api-keys/{k['key_id']}"
    for raw, ctype in [(b"[]", "application/json"), (b"{", "application/json"),
                       (b"null", "application/json"), (b'{"a":1}', "text/plain")]:
        r = inst.request("DELETE", url, content=raw, headers={**BOOT, "Content-Type": ctype})
        assert r.status_code == 422, raw
    r = inst.request("DELETE", url, content=b'{"reason":"x"}',
                     headers={**BOOT, "Content-Type": "application/json"})
    assert r.status_code == 200


# ---- audit (api-admin §9.4) ---------------------------------------------------------

def test_audit_rows_of_created_and_revoked(inst, world):
    admin = make_admin(inst)
    h = admin["headers"]
    uid = make_user(inst, "bound@example.com")
    a = create(inst, {"name": "A", "scope": "o:r", "user_id": uid}, headers=h)
    b = create(inst, {"name": "B", "scope": "p:r"}, headers=h, path="/admin/api-keys")
    assert inst.post(f"/auth/apikeys/{a['key_id']}/revoke", headers=h).status_code == 200
    assert inst.delete(f"/admin/api-keys/{b['key_id']}", headers=h).status_code == 200
    missing = str(uuid.uuid4())
    assert inst.delete(f"/admin/api-keys/{missing}", headers=h).status_code == 404
    assert inst.post("/auth/apikeys", json={"name": "C", "scope": "s", "user_id": missing},
                     headers=h).status_code == 404
    assert inst.post("/auth/apikeys", json={"name": "C", "scope": " "},
                     headers=BOOT).status_code == 400

    created = audit(inst, world, "api_key.created", n=4)
    ok = [r for r in created if r["success"]]
    assert [(r["target_id"], r["actor_id"], r["actor_type"], r["target_type"]) for r in ok] == \
        [(a["key_id"], admin["user_id"], "admin", "api_key"),
         (b["key_id"], admin["user_id"], "admin", "api_key")]
    assert ok[0]["metadata"] == {"name": "A", "service": "o", "scope": "o:r", "user_id": uid}
    assert ok[1]["metadata"] == {"name": "B", "service": "p", "scope": "p:r"}
    fails = [r for r in created if not r["success"]]
    assert [(r["failure_reason"], r["actor_id"], r["actor_type"]) for r in fails] == \
        [("invalid_user", admin["user_id"], "user"), ("invalid_api_key", None, "system")]

    revoked = audit(inst, world, "api_key.revoked", n=3)
    assert [(r["success"], r["target_id"], r["failure_reason"]) for r in revoked] == \
        [(True, a["key_id"], None), (True, b["key_id"], None),
         (False, missing, "invalid_api_key")]
    assert revoked[0]["metadata"] == {"name": "A", "service": "o", "scope": "o:r",
                                      "user_id": uid}
    assert revoked[1]["metadata"] == {"name": "B", "service": "p", "scope": "p:r"}
    assert revoked[0]["actor_type"] == "admin" and revoked[2]["actor_type"] == "system"
    # raw keys never reach audit rows
    dump = json.dumps(rows(inst, world, "SELECT * FROM audit_events"))
    assert a["api_key"] not in dump and b["api_key"] not in dump
