"""POST /auth/token, client-credentials grant (api-core §6.4 A, §5.3, §5.5, §11.2, D6)."""

import base64
import time
import uuid

import jwt
import pytest

from adminlib import login_tokens, sql
from clientlib import BOOT, audit_rows, create, grant, raw_form, start

BAD_CLIENT = {"detail": "Invalid client credentials.", "code": "invalid_credentials"}
BAD_GRANT = {"detail": "Unsupported grant type.", "code": "invalid_credentials"}
BAD_FORM = {"detail": "Invalid request payload.", "code": "invalid_credentials"}
BAD_SCOPE = {"detail": "Invalid scope.", "code": "invalid_scope"}


def verify(inst, token: str, audience="auth-service") -> dict:
    keys = inst.get("/.well-known/jwks.json").json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == kid)).key
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience)


def ok(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


def test_success_body_and_claims(authd):
    inst, admin = start(authd)
    c = create(inst, admin["headers"], scopes=["read", "write"], token_ttl_seconds=120)
    before = int(time.time())
    r = grant(inst, c["client_id"], c["client_secret"])
    body = ok(r)
    assert list(body) == ["access_token", "token_type", "expires_in", "scope"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == 120
    assert body["scope"] == "read write"
    assert "set-cookie" not in r.headers
    assert r.headers["cache-control"] == "no-store"
    tok = body["access_token"]
    assert jwt.get_unverified_header(tok) == {"alg": "RS256", "typ": "JWT",
                                              "kid": jwt.get_unverified_header(tok)["kid"]}
    claims = verify(inst, tok)
    assert set(claims) == {"jti", "iat", "exp", "sub", "type", "aud", "role", "scope"}
    assert claims["sub"] == c["client_id"] and claims["type"] == "m2m"
    assert claims["role"] == "service" and claims["aud"] == "auth-service"
    assert claims["scope"] == "read write"
    assert claims["exp"] - claims["iat"] == 120
    assert before - 1 <= claims["iat"] <= int(time.time()) + 1
    # jti is a fresh UUID v4 per token.
    again = verify(inst, ok(grant(inst, c["client_id"], c["client_secret"]))["access_token"])
    assert again["jti"] != claims["jti"]
    assert uuid.UUID(claims["jti"]).version == 4
    # Default TTL.
    d = create(inst, admin["headers"], name="default-ttl")
    body = ok(grant(inst, d["client_id"], d["client_secret"]))
    claims = verify(inst, body["access_token"])
    assert body["expires_in"] == 3600 and claims["exp"] - claims["iat"] == 3600

    # An M2M token is not an access token anywhere the service checks one.
    r = inst.get("/auth/validate", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    r = inst.get("/admin/clients", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    r = inst.get("/auth/sessions", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401


def test_scope_rules(authd):
    inst, admin = start(authd)
    c = create(inst, admin["headers"], scopes=["read", "write", "admin:x"])
    cid, sec = c["client_id"], c["client_secret"]
    cases = {
        None: "read write admin:x",               # none requested: all, stored order
        "": "read write admin:x",                 # blank = absent
        "   ": "read write admin:x",
        "write": "write",
        "write read": "write read",               # order as requested
        "write read write": "write read write",   # repeats kept
        "  read    write ": "read write",          # empty items dropped
        "admin:x": "admin:x",
    }
    for requested, granted in cases.items():
        body = ok(grant(inst, cid, sec, scope=requested))
        assert body["scope"] == granted, requested
        assert verify(inst, body["access_token"])["scope"] == granted
    for requested in ["delete", "read delete", "READ", "read,write", "admin", "read\twrite"]:
        r = grant(inst, cid, sec, scope=requested)
        assert r.status_code == 400 and r.json() == BAD_SCOPE, requested
    # '+' is a space in a form body.
    assert ok(raw_form(inst, f"grant_type=client_credentials&client_id={cid}"
                             f"&client_secret={sec}&scope=read+write"))["scope"] == "read write"
    # Authentication is checked before the scope.
    r = grant(inst, cid, "cs_wrong", scope="delete")
    assert r.status_code == 401 and r.json() == BAD_CLIENT


def test_audience(authd):
    inst, admin = start(authd)
    c = create(inst, admin["headers"])
    cid, sec = c["client_id"], c["client_secret"]
    tok = ok(grant(inst, cid, sec, audience="orders"))["access_token"]
    claims = verify(inst, tok, audience=["auth-service", "orders"])
    assert claims["aud"] == ["auth-service", "orders"]
    tok = ok(grant(inst, cid, sec, audience="  orders  "))["access_token"]
    assert verify(inst, tok, audience="orders")["aud"] == ["auth-service", "orders"]
    for same in ["auth-service", " auth-service ", "", "   "]:
        tok = ok(grant(inst, cid, sec, audience=same))["access_token"]
        assert verify(inst, tok)["aud"] == "auth-service", same
    with pytest.raises(jwt.InvalidAudienceError):
        verify(inst, ok(grant(inst, cid, sec))["access_token"], audience="orders")


def test_grant_type_and_credential_errors(authd):
    inst, admin = start(authd)
    c = create(inst, admin["headers"])
    cid, sec = c["client_id"], c["client_secret"]
    # grant_type: exactly client_credentials (after trimming).
    for gt in [None, "", "password", "refresh_token", "Client_Credentials", "client_credentials2"]:
        data = {"client_id": cid, "client_secret": sec}
        if gt is not None:
            data["grant_type"] = gt
        r = inst.post("/auth/token", data=data)
        assert r.status_code == 400 and r.json() == BAD_GRANT, gt
        assert "set-cookie" not in r.headers
    ok(grant(inst, cid, sec, grant_type="  client_credentials "))
    # A form-encoded refresh grant is not supported.
    rt = login_tokens(inst, "admin@example.com")["refresh_token"]
    r = inst.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": rt})
    assert r.status_code == 400 and r.json() == BAD_GRANT
    r = inst.post("/auth/token", data={"refresh_token": rt})
    assert r.status_code == 400 and r.json() == BAD_GRANT
    # Empty form body.
    r = raw_form(inst, b"")
    assert r.status_code == 400 and r.json() == BAD_GRANT

    # Missing, blank or wrong credentials: 401 with one answer for all.
    for client_id, secret in [(None, sec), (cid, None), (None, None), ("", sec), (cid, ""),
                              ("  ", sec), (cid, "   "), ("client_unknownunknownunkno", sec),
                              (cid, sec + "x"), (cid, sec[:-1]), (cid, "cs_" + "A" * 43),
                              (cid.upper(), sec), (c["id"], sec)]:
        r = grant(inst, client_id, secret)
        assert r.status_code == 401 and r.json() == BAD_CLIENT, (client_id, secret)
    # Surrounding blanks are trimmed.
    ok(grant(inst, f"  {cid} ", f"\t{sec} "))

    # Credentials only in the form: HTTP Basic is not read.
    basic = base64.b64encode(f"{cid}:{sec}".encode()).decode()
    r = inst.post("/auth/token", data={"grant_type": "client_credentials"},
                  headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 401 and r.json() == BAD_CLIENT
    r = inst.post("/auth/token", data={"grant_type": "client_credentials", "client_id": cid},
                  headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 401 and r.json() == BAD_CLIENT


def test_form_decoding(authd):
    inst, admin = start(authd)
    c = create(inst, admin["headers"], scopes=["read", "wr ite"])
    cid, sec = c["client_id"], c["client_secret"]
    base = f"grant_type=client_credentials&client_id={cid}&client_secret={sec}"
    # Invalid UTF-8 after decoding → 400 (D6), in any field, known or not.
    for body in [base + "&scope=%FF", base + "&x=%C3", base + "&%FF=1", "grant_type=%FF",
                 base.encode() + b"&audience=\xff", b"\xfe\xff", base + "&client_id=%ED%A0%80"]:
        r = raw_form(inst, body)
        assert r.status_code == 400 and r.json() == BAD_FORM, body
    # A NUL byte cannot be part of any field of this grant.
    r = raw_form(inst, base + "&audience=a%00b")
    assert r.status_code == 400 and r.json() == BAD_FORM
    # Percent-encoding, case-insensitive content type with parameters.
    enc = "".join(f"%{b:02X}" for b in cid.encode())
    ok(raw_form(inst, f"grant_type=client%5Fcredentials&client_id={enc}&client_secret={sec}",
                content_type="Application/X-WWW-Form-URLEncoded; charset=UTF-8"))
    ok(raw_form(inst, base, content_type="text/plain, application/x-www-form-urlencoded"))
    # A malformed escape stays literal (and then is simply a wrong value).
    r = raw_form(inst, f"grant_type=client_credentials&client_id={cid}%G1&client_secret={sec}")
    assert r.status_code == 401 and r.json() == BAD_CLIENT
    # First occurrence of each field wins; a blank first occurrence is "absent".
    r = raw_form(inst, base + "&client_secret=wrong")
    ok(r)
    r = raw_form(inst, f"grant_type=client_credentials&client_id={cid}&client_secret=wrong"
                       f"&client_secret={sec}")
    assert r.status_code == 401 and r.json() == BAD_CLIENT
    r = raw_form(inst, f"grant_type=&grant_type=client_credentials&client_id={cid}"
                       f"&client_secret={sec}")
    assert r.status_code == 400 and r.json() == BAD_GRANT
    r = raw_form(inst, f"grant_type=client_credentials&client_id=&client_id={cid}"
                       f"&client_secret={sec}")
    assert r.status_code == 401 and r.json() == BAD_CLIENT
    # Stray separators and value-less fields are tolerated; a scope with an
    # encoded space is two items.
    ok(raw_form(inst, "&&" + base + "&flag&=x&"))
    r = raw_form(inst, base + "&scope=wr%20ite")
    assert r.status_code == 400 and r.json() == BAD_SCOPE


def test_json_body_still_refreshes(authd):
    inst, admin = start(authd)
    c = create(inst, admin["headers"])
    rt = admin["refresh_token"]
    r = inst.post("/auth/token", json={"refresh_token": rt, "grant_type": "client_credentials"})
    body = ok(r)
    assert set(body) == {"access_token", "refresh_token", "token_type"}
    assert body["token_type"] == "bearer"
    # Client credentials in a JSON body are the refresh branch: 422.
    r = inst.post("/auth/token", json={"grant_type": "client_credentials",
                                       "client_id": c["client_id"],
                                       "client_secret": c["client_secret"]})
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials"
    # And a form-looking body without the form content type too.
    r = inst.post("/auth/token", content=f"grant_type=client_credentials&client_id={c['client_id']}"
                                         f"&client_secret={c['client_secret']}".encode(),
                  headers={"Content-Type": "text/plain"})
    assert r.status_code == 422


def test_rotation_deactivation_and_deletion(authd):
    inst, admin = start(authd)
    h = admin["headers"]
    c = create(inst, h)
    cid, old = c["client_id"], c["client_secret"]
    issued = ok(grant(inst, cid, old))["access_token"]
    new = inst.post(f"/admin/clients/{c['id']}/rotate-secret", headers=h).json()["client_secret"]
    r = grant(inst, cid, old)
    assert r.status_code == 401 and r.json() == BAD_CLIENT
    ok(grant(inst, cid, new))
    # Deactivated: refused; reactivated: accepted again.
    inst.request("PATCH", f"/admin/clients/{c['id']}", json={"is_active": False}, headers=h)
    r = grant(inst, cid, new)
    assert r.status_code == 401 and r.json() == BAD_CLIENT
    inst.request("PATCH", f"/admin/clients/{c['id']}", json={"is_active": True}, headers=h)
    ok(grant(inst, cid, new))
    # Scope changes apply to the next token.
    inst.request("PATCH", f"/admin/clients/{c['id']}", json={"scopes": ["only"]}, headers=h)
    assert ok(grant(inst, cid, new))["scope"] == "only"
    r = grant(inst, cid, new, scope="read")
    assert r.status_code == 400 and r.json() == BAD_SCOPE
    # Deleted: refused like an unknown client.
    assert inst.delete(f"/admin/clients/{c['id']}", headers=h).status_code == 200
    r = grant(inst, cid, new)
    assert r.status_code == 401 and r.json() == BAD_CLIENT
    # Tokens already issued keep verifying until their own expiry.
    assert verify(inst, issued)["sub"] == cid


def test_rate_limit_bucket_per_client(authd):
    inst, admin = start(authd, {"RATE_LIMIT__TOKEN_REQUESTS_PER_MINUTE": "3"})
    a = create(inst, admin["headers"], name="a")
    b = create(inst, admin["headers"], name="b")
    # Wrong secrets count against the client's bucket too.
    assert grant(inst, a["client_id"], "cs_wrong").status_code == 401
    ok(grant(inst, a["client_id"], a["client_secret"]))
    ok(grant(inst, a["client_id"], a["client_secret"]))
    for _ in range(2):
        r = grant(inst, a["client_id"], a["client_secret"])
        assert r.status_code == 429 and r.json() == {"detail": "Rate limit exceeded.",
                                                     "code": "rate_limited"}
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["cache-control"] == "no-store"
    # Another client has its own bucket (same IP).
    for _ in range(3):
        ok(grant(inst, b["client_id"], b["client_secret"]))
    assert grant(inst, b["client_id"], b["client_secret"]).status_code == 429


def test_grant_audit_rows(authd, world):
    inst, admin = start(authd)
    c = create(inst, admin["headers"], scopes=["read", "write"])
    cid, sec = c["client_id"], c["client_secret"]
    ok(grant(inst, cid, sec, scope="write"))
    grant(inst, cid, "cs_wrong")
    grant(inst, "client_nobody", sec)
    grant(inst, cid, sec, scope="nope")
    inst.post("/auth/token", data={"grant_type": "password", "client_id": cid})
    grant(inst, None, sec)
    rows = audit_rows(inst, world, prefix="client.a", expect=6)
    assert [(r["event_type"], r["success"], r["failure_reason"]) for r in rows] == [
        ("client.authenticated", True, None),
        ("client.auth.failure", False, "invalid_credentials"),
        ("client.auth.failure", False, "invalid_credentials"),
        ("client.auth.failure", False, "invalid_scope"),
        ("client.auth.failure", False, "invalid_credentials"),
        ("client.auth.failure", False, "invalid_credentials"),
    ]
    for r in rows:
        assert r["actor_type"] == "service" and r["target_id"] is None
    assert rows[0]["metadata"] == {"client_id": cid, "scope": "write"}
    assert rows[0]["actor_id"] == c["id"]
    assert rows[1]["metadata"] == {"client_id": cid}
    assert rows[2]["metadata"] == {"client_id": "client_nobody"} and rows[2]["actor_id"] is None
    assert rows[3]["metadata"] == {"client_id": cid}
    assert rows[4]["metadata"] is None                    # wrong grant type: no client_id
    assert rows[5]["metadata"] == {"client_id": None}
    # Neither the secret nor the token is ever stored.
    assert sec not in repr(sql(inst, world, "SELECT * FROM audit_events"))


def test_bootstrap_created_client_works_and_unknown_paths(authd):
    inst, _ = start(authd, admin=False)
    c = create(inst, BOOT, scopes=["s"])
    ok(grant(inst, c["client_id"], c["client_secret"]))
    # The form branch is /auth/token only.
    r = inst.post("/auth/token/", data={"grant_type": "client_credentials"})
    assert r.status_code == 404
    r = inst.get("/auth/token")
    assert r.status_code == 405

