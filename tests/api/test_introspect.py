"""POST /auth/introspect (api-core §6.8, decision R7) and its cache.

Keys are created through the key API (test_apikeys.py covers that API);
owner and key states with no API yet are set with adminlib.sql. Cached
answers live at most 60 s and are replaced on revoke, so a test that changes
a row behind the service's back introspects the key for the first time only
after the change."""

import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from adminlib import BOOTSTRAP_KEY, create_admin, deactivate, sql
from harness import wait_until

BOOT = {"X-Admin-API-Key": BOOTSTRAP_KEY}
INVALID_KEY = {"valid": False, "code": "invalid_api_key"}
EXPIRED_KEY = {"valid": False, "code": "expired_api_key"}
REVOKED_KEY = {"valid": False, "code": "revoked_api_key"}
SHARED_SECRETS = {"SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY": "test-refresh-hash-key-0123456789",
                  "SIGNING_KEYS__ENCRYPTION_KEY": "test-signing-passphrase-0123456789"}


@pytest.fixture
def inst(authd):
    return authd({"ADMIN_API_KEY": BOOTSTRAP_KEY})


def create(inst, **body):
    body.setdefault("name", "k")
    body.setdefault("scope", "s")
    r = inst.post("/auth/apikeys", json=body, headers=BOOT)
    assert r.status_code == 200, r.text
    return r.json()


def introspect(inst, key, **kw):
    return inst.post("/auth/introspect", json={"api_key": key}, **kw)


def answer(inst, key):
    r = introspect(inst, key)
    assert r.status_code == 200, r.text
    return r.json()


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- answers ---------------------------------------------------------------------

def test_valid_service_key_exact_body(inst):
    k = create(inst, name="orders", scope="orders:read,orders:write")
    r = introspect(inst, k["api_key"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    expected = {"valid": True, "user_id": None, "scopes": ["orders:read", "orders:write"],
                "key_id": k["key_id"], "expires_at": None, "service": "orders"}
    # exact bytes: field order and compact form as the contract lists them
    assert r.content == json.dumps(expected, separators=(",", ":")).encode()
    assert answer(inst, k["api_key"]) == expected                  # again (cached)
    # no caller authentication, and no no-store header on this path (§3.3)
    assert "cache-control" not in r.headers
    r = introspect(inst, k["api_key"], headers={"Authorization": "Bearer junk"})
    assert r.status_code == 200 and r.json()["valid"] is True


def test_valid_user_key_with_expiry(inst):
    uid = create_admin(inst, "owner@example.com")
    exp = "2099-06-01T10:00:00.250000Z"
    k = create(inst, service="billing", scope=" billing:read , ,billing:write,, ",
               user_id=uid, expires_at="2099-06-01T12:00:00.25+02:00")
    assert k["expires_at"] == exp
    body = answer(inst, k["api_key"])
    assert list(body) == ["valid", "user_id", "scopes", "key_id", "expires_at", "service"]
    assert body == {"valid": True, "user_id": uid, "scopes": ["billing:read", "billing:write"],
                    "key_id": k["key_id"], "expires_at": "2099-06-01T10:00:00.250000+00:00",
                    "service": "billing"}
    k2 = create(inst, scope="x", expires_at="2099-01-01T00:00:00Z")
    assert answer(inst, k2["api_key"])["expires_at"] == "2099-01-01T00:00:00+00:00"


@pytest.mark.parametrize("key", [
    "", "x", "sk", "sk_", "abc", "SK_" + "A" * 43, " sk_" + "A" * 43,
    "sk_" + "A" * 43,                                      # well-formed, unknown
    "sk_" + "A" * 10_000,                                  # 10 KB
    "x" * 10_000,
    "ключ-доступа", "sk_ключ", "sk_\u00e9\u4e2d\U0001f511",
    "sk_\u0000abc", "\u0000",
    "sk_" + "A" * 42 + "\n",
])
def test_any_string_is_a_200(inst, key):
    r = introspect(inst, key)
    assert r.status_code == 200, r.text
    assert r.json() == INVALID_KEY


def test_key_with_surrounding_space_is_not_the_key(inst):
    k = create(inst)
    assert answer(inst, " " + k["api_key"]) == INVALID_KEY
    assert answer(inst, k["api_key"] + " ") == INVALID_KEY
    assert answer(inst, k["api_key"][:-1]) == INVALID_KEY
    assert answer(inst, k["api_key"].upper()) == INVALID_KEY
    assert answer(inst, k["api_key"])["valid"] is True


@pytest.mark.parametrize("raw,ctype", [
    (b"", "application/json"),
    (b"{", "application/json"),
    (b"not json", "application/json"),
    (b"[]", "application/json"),
    (b'["sk_x"]', "application/json"),
    (b'"sk_x"', "application/json"),
    (b"null", "application/json"),
    (b"{}", "application/json"),
    (b'{"key":"sk_x"}', "application/json"),
    (b'{"api_key":null}', "application/json"),
    (b'{"api_key":1}', "application/json"),
    (b'{"api_key":true}', "application/json"),
    (b'{"api_key":["sk_x"]}', "application/json"),
    (b'{"api_key":{"k":"sk_x"}}', "application/json"),
    (b'{"api_key":"a","api_key":"b"}', "application/json"),
    (b'{"api_key":"\xff"}', "application/json"),
    (b'{"api_key":"sk_x"}', "text/plain"),
    (b'api_key=sk_x', "application/x-www-form-urlencoded"),
])
def test_malformed_requests_are_422(inst, raw, ctype):
    r = inst.post("/auth/introspect", content=raw, headers={"Content-Type": ctype})
    assert r.status_code == 422, (raw, r.text)
    body = r.json()
    assert body["code"] == "invalid_credentials"
    assert body["detail"].startswith("Invalid request payload")


def test_422_detail_exact_outside_development(authd):
    inst = authd({"APP__ENVIRONMENT": "staging"})
    r = inst.post("/auth/introspect", json={"api_key": 5})
    assert r.status_code == 422
    assert r.json() == {"detail": "Invalid request payload.", "code": "invalid_credentials"}
    assert introspect(inst, "sk_nope").json() == INVALID_KEY


def test_extra_fields_and_content_types(inst):
    k = create(inst)
    r = inst.post("/auth/introspect", json={"api_key": k["api_key"], "extra": {"a": [1]}})
    assert r.status_code == 200 and r.json()["valid"] is True
    for ctype in (None, "application/json; charset=utf-8", "application/merge-patch+json"):
        hdr = {"Content-Type": ctype} if ctype else {}
        r = inst.post("/auth/introspect", content=json.dumps({"api_key": k["api_key"]}).encode(),
                      headers=hdr)
        assert r.status_code == 200 and r.json()["valid"] is True, ctype


def test_wrong_method_is_405(inst):
    r = inst.get("/auth/introspect")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


# ---- states --------------------------------------------------------------------

def test_revoked_key_even_after_a_cached_valid_answer(inst):
    k = create(inst)
    assert answer(inst, k["api_key"])["valid"] is True                # fills the cache
    assert answer(inst, k["api_key"])["valid"] is True
    assert inst.post(f"/auth/apikeys/{k['key_id']}/revoke", headers=BOOT).status_code == 200
    assert answer(inst, k["api_key"]) == REVOKED_KEY
    k2 = create(inst)
    assert answer(inst, k2["api_key"])["valid"] is True
    assert inst.delete(f"/admin/api-keys/{k2['key_id']}", headers=BOOT).status_code == 200
    assert answer(inst, k2["api_key"]) == REVOKED_KEY


def test_expired_key(inst):
    past = iso(datetime.now(timezone.utc) - timedelta(seconds=1))
    k = create(inst, expires_at=past)                                  # born expired
    assert answer(inst, k["api_key"]) == EXPIRED_KEY
    assert answer(inst, k["api_key"]) == EXPIRED_KEY
    # revoked wins over expired (§6.8 order)
    assert inst.post(f"/auth/apikeys/{k['key_id']}/revoke", headers=BOOT).status_code == 200
    assert answer(inst, k["api_key"]) == REVOKED_KEY


def test_key_expires_while_cached(inst):
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    k = create(inst, expires_at=iso(soon))
    assert answer(inst, k["api_key"])["valid"] is True
    wait_until(lambda: datetime.now(timezone.utc) > soon + timedelta(milliseconds=50), 5)
    assert answer(inst, k["api_key"]) == EXPIRED_KEY


def test_owner_inactive_or_deleted_is_revoked(inst, world):
    active = create_admin(inst, "active@example.com")
    sleepy = create_admin(inst, "sleepy@example.com")
    gone = create_admin(inst, "gone@example.com")
    ka = create(inst, user_id=active)
    ks = create(inst, user_id=sleepy)
    kg = create(inst, user_id=gone)
    kx = create(inst, user_id=sleepy, expires_at="2001-01-01T00:00:00Z")
    deactivate(inst, world, sleepy)
    sql(inst, world, f"UPDATE users SET deleted_at = updated_at WHERE id = '{gone}'")
    # first introspection of each key after the change (no cached answer yet)
    assert answer(inst, ka["api_key"])["user_id"] == active
    assert answer(inst, ks["api_key"]) == REVOKED_KEY
    assert answer(inst, kg["api_key"]) == REVOKED_KEY
    assert answer(inst, kx["api_key"]) == EXPIRED_KEY                 # expired comes first
    # the cached answers keep the verdict
    assert answer(inst, ks["api_key"]) == REVOKED_KEY
    assert answer(inst, kg["api_key"]) == REVOKED_KEY


def test_soft_deleted_key_is_invalid(inst, world):
    k = create(inst)
    sql(inst, world, f"UPDATE api_keys SET deleted_at = created_at WHERE id = '{k['key_id']}'")
    assert answer(inst, k["api_key"]) == INVALID_KEY


def test_concurrent_introspections(inst):
    keys = [create(inst, name=f"k{i}")["api_key"] for i in range(4)]
    bad = ["sk_" + uuid.uuid4().hex for _ in range(4)]
    errors = []

    def worker(n):
        import httpx
        with httpx.Client(base_url=inst.base_url, timeout=15) as c:
            for i in range(25):
                key = (keys + bad)[(n + i) % 8]
                r = c.post("/auth/introspect", json={"api_key": key})
                ok = r.status_code == 200 and r.json()["valid"] == (key in keys)
                if not ok:
                    errors.append((key, r.status_code, r.text))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---- audit ------------------------------------------------------------------------

def audit_used(inst, world, n):
    q = ("SELECT actor_id, actor_type, target_id, target_type, success, failure_reason, "
         "metadata FROM audit_events WHERE event_type = 'api_key.used' ORDER BY created_at, id")
    found = []

    def enough():
        found[:] = [[None if v in (None, "") else str(v) for v in row]
                    for row in sql(inst, world, q)]
        return len(found) >= n

    wait_until(enough, 5)
    return [(a, at, t, tt, s in ("1", "t"), fr, m) for a, at, t, tt, s, fr, m in found]


def test_audit_rows(inst, world):
    uid = create_admin(inst, "auditee@example.com")
    user_key = create(inst, user_id=uid)
    svc_key = create(inst)
    expired = create(inst, expires_at="2001-01-01T00:00:00Z")
    revoked = create(inst)
    inst.post(f"/auth/apikeys/{revoked['key_id']}/revoke", headers=BOOT)
    answer(inst, user_key["api_key"])
    answer(inst, svc_key["api_key"])
    answer(inst, svc_key["api_key"])                                   # cache hit: audited too
    answer(inst, "sk_unknown")
    answer(inst, "nope")
    answer(inst, expired["api_key"])
    answer(inst, revoked["api_key"])
    got = audit_used(inst, world, 7)
    assert got == [
        (uid, "service", user_key["key_id"], "api_key", True, None, None),
        (None, "service", svc_key["key_id"], "api_key", True, None, None),
        (None, "service", svc_key["key_id"], "api_key", True, None, None),
        (None, "service", None, None, False, "invalid_api_key", None),
        (None, "service", None, None, False, "invalid_api_key", None),
        (None, "service", expired["key_id"], "api_key", False, "expired_api_key", None),
        (None, "service", revoked["key_id"], "api_key", False, "revoked_api_key", None),
    ]
    dump = json.dumps(sql(inst, world, "SELECT * FROM audit_events"), default=str)
    for k in (user_key, svc_key, expired, revoked):
        assert k["api_key"] not in dump


def test_raw_key_never_logged(inst):
    k = create(inst)
    answer(inst, k["api_key"])
    inst.post("/auth/introspect", content=json.dumps({"api_key": k["api_key"]}).encode() + b"x",
              headers={"Content-Type": "application/json"})              # 422 path
    time.sleep(0.3)                                                       # log flusher
    assert k["api_key"] not in inst.all_output()


# ---- several instances (architecture: one deployment, shared PostgreSQL + Redis) -----

@pytest.mark.postgres_only
def test_revocation_seen_by_another_instance_at_once(authd):
    env = {"ADMIN_API_KEY": BOOTSTRAP_KEY, **SHARED_SECRETS}
    a = authd(env)
    b = authd(env, share_with=a)
    k1 = create(a)
    k2 = create(a)
    for _ in range(3):                                # both instances answer (and cache) valid
        assert answer(a, k1["api_key"])["valid"] is True
        assert answer(b, k1["api_key"])["valid"] is True
        assert answer(b, k2["api_key"])["valid"] is True
    assert a.post(f"/auth/apikeys/{k1['key_id']}/revoke", headers=BOOT).status_code == 200
    assert answer(b, k1["api_key"]) == REVOKED_KEY
    assert answer(a, k1["api_key"]) == REVOKED_KEY
    assert b.delete(f"/admin/api-keys/{k2['key_id']}", headers=BOOT).status_code == 200
    assert answer(a, k2["api_key"]) == REVOKED_KEY
    assert answer(b, k2["api_key"]) == REVOKED_KEY


@pytest.mark.postgres_only
def test_cache_entries_use_the_documented_redis_key(authd, world):
    import hashlib
    inst = authd({"ADMIN_API_KEY": BOOTSTRAP_KEY})
    k = create(inst)
    answer(inst, k["api_key"])
    name = "apikey:" + hashlib.sha256(k["api_key"].encode()).hexdigest()
    ttl = int(world.redis.cli("PTTL", name).strip())
    assert 0 < ttl <= 60_000
    assert k["api_key"] not in world.redis.cli("GET", name)

    def entry(key):
        return "apikey:" + hashlib.sha256(key.encode()).hexdigest()

    # a snapshot never outlives the key's expiry
    soon = create(inst, expires_at=iso(datetime.now(timezone.utc) + timedelta(seconds=10)))
    answer(inst, soon["api_key"])
    assert 0 < int(world.redis.cli("PTTL", entry(soon["api_key"])).strip()) <= 10_000
    # unknown and expired keys are not cached
    answer(inst, "sk_" + "B" * 43)
    assert world.redis.cli("EXISTS", entry("sk_" + "B" * 43)).strip() == "0"
    old = create(inst, expires_at="2001-01-01T00:00:00Z")
    assert answer(inst, old["api_key"]) == EXPIRED_KEY
    assert world.redis.cli("EXISTS", entry(old["api_key"])).strip() == "0"
