"""Self-service sessions and history (api-core §9) and GET /auth/csrf (§6.1)."""

import uuid

import pytest

from test_auth import SHARED_SECRETS, STRONG, login, register, validate

INVALID_TOKEN = {"detail": "Invalid token.", "code": "invalid_token"}


@pytest.fixture
def app(authd, smtp):
    return authd({"EMAIL__MAILHOG_HOST": smtp.host, "EMAIL__MAILHOG_PORT": str(smtp.port),
                  **SHARED_SECRETS})


def bearer(t):
    return {"Authorization": f"Bearer {t['access_token']}"}


CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/120.0 Safari/537.36")


def test_list_revoke_and_history(app, smtp):
    register(app, smtp, "sess@example.com")
    t1 = app.post("/auth/login", json={"email": "sess@example.com", "password": STRONG},
                  headers={"User-Agent": CHROME_WIN}).json()
    t2 = login(app, "sess@example.com").json()
    t3 = login(app, "sess@example.com").json()
    r = app.get("/auth/sessions", headers=bearer(t1))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["has_more"] is False and body["next_cursor"] is None
    assert len(body["data"]) == 3
    item = next(i for i in body["data"] if i["is_current"])
    assert set(item) == {"session_id", "created_at", "last_seen_at", "expires_at", "revoked_at",
                         "revoke_reason", "ip_address", "user_agent", "device_label",
                         "is_suspicious", "suspicious_reasons", "is_current"}
    assert item["device_label"] == "Chrome on Windows"
    assert item["ip_address"] == "127.0.0.1"
    assert item["created_at"].endswith("Z") and item["revoked_at"] is None
    assert item["is_suspicious"] is True and item["suspicious_reasons"] == ["new_ip", "new_user_agent"]
    assert sum(i["is_current"] for i in body["data"]) == 1
    created = [i["created_at"] for i in body["data"]]
    assert created == sorted(created, reverse=True)

    # paging
    p1 = app.get("/auth/sessions", params={"limit": 2}, headers=bearer(t1)).json()
    assert len(p1["data"]) == 2 and p1["has_more"] is True and p1["next_cursor"]
    p2 = app.get("/auth/sessions", params={"limit": 2, "cursor": p1["next_cursor"]},
                 headers=bearer(t1)).json()
    assert len(p2["data"]) == 1 and p2["has_more"] is False
    ids = {i["session_id"] for i in p1["data"] + p2["data"]}
    assert len(ids) == 3

    current = item["session_id"]
    other = next(i["session_id"] for i in body["data"] if not i["is_current"])
    r = app.request("DELETE", f"/auth/sessions/{current}", headers=bearer(t1))
    assert r.status_code == 400 and r.json()["code"] == "cannot_revoke_current_session"
    r = app.request("DELETE", f"/auth/sessions/{other.upper()}", json={"reason": "lost phone"},
                    headers=bearer(t1))
    assert r.status_code == 200 and r.json() == {"session_id": other, "revoke_reason": "lost phone"}
    r = app.request("DELETE", f"/auth/sessions/{other}", headers=bearer(t1))
    assert r.status_code == 409 and r.json()["code"] == "session_revoked"
    revoked = app.get("/auth/sessions", params={"status": "revoked"}, headers=bearer(t1)).json()
    assert [i["session_id"] for i in revoked["data"]] == [other]
    assert revoked["data"][0]["revoke_reason"] == "lost phone"

    # revoke all others
    r = app.request("DELETE", "/auth/sessions", headers=bearer(t1))
    assert r.status_code == 200
    out = r.json()
    assert out["revoke_reason"] == "self_revoke_others" and out["revoked_session_count"] == 1
    assert validate(app, t1["access_token"]).status_code == 204
    for t in (t2, t3):
        assert validate(app, t["access_token"]).json()["code"] == "session_expired"
    r = app.request("DELETE", "/auth/sessions", headers=bearer(t1))
    assert r.json() == {"revoked_session_ids": [], "revoked_session_count": 0,
                        "revoke_reason": "self_revoke_others"}
    assert len(app.get("/auth/sessions", params={"status": "all"},
                       headers=bearer(t1)).json()["data"]) == 3

    # history: login successes, session creations, revocations; newest first
    login(app, "sess@example.com", "Wrong!pass1")
    h = app.get("/auth/history", headers=bearer(t1))
    assert h.status_code == 200, h.text
    events = [e["event_type"] for e in h.json()["data"]]
    assert "user.login.success" in events and "session.revoked" in events
    assert "user.login.failure" in events and "session.created" in events
    assert "token.issued" not in events
    first = h.json()["data"][0]
    assert set(first) == {"id", "event_type", "created_at", "ip_address", "user_agent",
                          "success", "failure_reason", "metadata"}


def test_other_users_sessions_are_not_found(app, smtp):
    register(app, smtp, "own1@example.com")
    register(app, smtp, "own2@example.com")
    a, b = login(app, "own1@example.com").json(), login(app, "own2@example.com").json()
    sid_b = next(i["session_id"] for i in app.get("/auth/sessions", headers=bearer(b)).json()["data"])
    r = app.request("DELETE", f"/auth/sessions/{sid_b}", headers=bearer(a))
    assert r.status_code == 404 and r.json() == {"detail": "Session not found.",
                                                 "code": "invalid_session"}
    r = app.request("DELETE", f"/auth/sessions/{uuid.uuid4()}", headers=bearer(a))
    assert r.status_code == 404
    assert validate(app, b["access_token"]).status_code == 204


@pytest.mark.parametrize("query", [{"status": "bogus"}, {"limit": "0"}, {"limit": "201"},
                                   {"limit": "x"}, {"cursor": "!!!"}, {"cursor": "e30="}])
def test_list_bad_query_422(app, query):
    r = app.get("/auth/sessions", params=query)   # 422 precedes authentication
    assert r.status_code == 422 and r.json()["code"] == "invalid_credentials"


def test_bad_path_and_body_422(app, smtp):
    register(app, smtp, "bad@example.com")
    t = login(app, "bad@example.com").json()
    assert app.request("DELETE", "/auth/sessions/not-a-uuid", headers=bearer(t)).status_code == 422
    for body in ({"reason": ""}, {"reason": "x" * 65}, {"reason": 5}, [1]):
        r = app.request("DELETE", f"/auth/sessions/{uuid.uuid4()}", json=body, headers=bearer(t))
        assert r.status_code == 422, body
    assert app.get("/auth/history", params={"limit": "500"}).status_code == 422


@pytest.mark.parametrize("path,method", [("/auth/sessions", "GET"), ("/auth/history", "GET"),
                                         ("/auth/sessions", "DELETE")])
def test_unauthenticated_401(app, path, method):
    r = app.request(method, path)
    assert r.status_code == 401 and r.json() == INVALID_TOKEN
    r = app.request(method, path, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json() == INVALID_TOKEN


def test_csrf_mints_token_and_cookie(app):
    r = app.get("/auth/csrf")
    assert r.status_code == 200
    tok = r.json()["csrf_token"]
    assert len(tok) == 43
    assert r.headers["Cache-Control"] == "no-store"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"__Host-auth_csrf={tok}; Path=/; SameSite=lax")
    assert "HttpOnly" not in cookie and "Max-Age" not in cookie
    assert app.get("/auth/csrf").json()["csrf_token"] != tok


def test_validate_moves_an_old_last_seen_at(app, smtp, world, backend):
    """api-core §6.7 step 5: validation sets last_seen_at when it is at least
    60 s old (best effort, at most once a minute per session and instance)."""
    from datetime import datetime, timezone
    from adminlib import rows, sql
    register(app, smtp, "seen@example.com")
    t = login(app, "seen@example.com").json()
    uid = rows(app, world, "SELECT id FROM users WHERE email = 'seen@example.com'")[0][0]
    sid = rows(app, world, f"SELECT session_id FROM sessions WHERE user_id = '{uid}'")[0][0]
    old = "2026-01-01T00:00:00.000000Z" if backend == "sqlite" else "2026-01-01 00:00:00+00"
    sql(app, world, f"UPDATE sessions SET last_seen_at = '{old}' WHERE session_id = '{sid}'")

    def last_seen():
        v = rows(app, world, f"SELECT last_seen_at FROM sessions WHERE session_id = '{sid}'")[0][0]
        return datetime.fromisoformat(v.replace("Z", "+00:00").replace(" ", "T"))

    assert last_seen().month == 1
    assert validate(app, t["access_token"]).status_code == 204
    moved = last_seen()
    assert abs((datetime.now(timezone.utc) - moved).total_seconds()) < 60, moved
