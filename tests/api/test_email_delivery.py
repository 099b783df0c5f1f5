"""Email delivery through the outbox (api-flows §7, data-model §14.2,
config-ops §7.2): SMTP to a capture server, the file transport, retries while
the mail server is down, a SIGKILL between commit and delivery, enc2 bodies
wiped after sending, abandonment.

Mail is triggered through POST /auth/signup (api-core §6.2). Until that route
exists the authd tests skip with a message saying so. The capture-server
fixture tests at the top run regardless.

Test knob: AUTHD_TEST_EMAIL_RETRY_DIVISOR=N (read only with APP__TEST_HOOKS=true)
divides the 30/120/600 s retry delays by N and shortens the claim lease to 11 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import socket
import sqlite3
import stat
import time
import uuid
from email import message_from_bytes, policy
from pathlib import Path

import pytest

import harness

PASSWORD = "Sup3r-Secret!pw"
BASE_URL = "http://auth.test/prefix/"
LINK_RE = re.compile(r"http://auth\.test/prefix/auth/verify-email\?token=([A-Za-z0-9_\-.]+)")
ENC_KEY = "email-tests-signing-encryption-key-0123456789"


def new_email() -> str:
    return f"mail-{uuid.uuid4().hex[:12]}@example.com"


def smtp_env(cap, **extra) -> dict:
    env = {"EMAIL__MAILHOG_HOST": "127.0.0.1", "EMAIL__MAILHOG_PORT": str(cap.port),
           "EMAIL__PUBLIC_BASE_URL": BASE_URL, "EMAIL__EMAIL_FROM": "auth@example.test",
           # stable across restarts on both backends (the instance key lives in
           # the working directory on PostgreSQL)
           "SIGNING_KEYS__ENCRYPTION_KEY": ENC_KEY}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def signup(inst: harness.Authd, email: str) -> None:
    r = inst.post("/auth/signup", json={"email": email, "password": PASSWORD})
    if r.status_code == 404:
        pytest.skip("POST /auth/signup is not implemented yet (404): these delivery tests "
                    "start running as soon as it lands")
    assert r.status_code == 201, r.text
    assert r.json() == {"accepted": True}


def email_logs(inst: harness.Authd, event: str) -> list[dict]:
    return [r for r in inst.logs() if r.get("event") == event]


def wait_log(inst: harness.Authd, event: str, timeout: float = 15, **fields) -> dict:
    rec = inst.wait_for_log(lambda r: r.get("event") == event
                            and all(r.get(k) == v for k, v in fields.items()), timeout)
    assert rec is not None, f"no {event} {fields} log line within {timeout}s\n" + inst.output_tail()
    return rec


def outbox_rows(world, inst: harness.Authd) -> list[dict]:
    """All email_outbox rows of the instance's database, oldest first."""
    cols = ["id", "kind", "to_address", "subject", "body_text", "body_html", "status",
            "attempt_count", "next_attempt_at", "expires_at", "last_error", "created_at",
            "sent_at"]
    url = inst.env["DATABASE__URL"]
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(url[len("sqlite:///"):], timeout=10)
        try:
            rows = con.execute(f"SELECT {', '.join(cols)} FROM email_outbox "
                               "ORDER BY created_at").fetchall()
        finally:
            con.close()
        return [dict(zip(cols, r)) for r in rows]
    db = url.rsplit("/", 1)[1]
    sel = ", ".join(f"'{c}', {c}" for c in cols)
    out = world.pg.psql(f"SELECT json_build_object({sel}) FROM email_outbox "
                        "ORDER BY created_at", db=db)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_row(world, inst, pred, timeout: float = 15) -> dict:
    def find():
        for row in outbox_rows(world, inst):
            if pred(row):
                return row
        return None
    row = harness.wait_until(find, timeout, interval=0.1)
    assert row is not None, f"no matching outbox row; rows: {outbox_rows(world, inst)}"
    return row


def assert_no_secrets_in_logs(inst: harness.Authd, email: str, token: str | None) -> None:
    out = "\n".join(inst.stdout_lines())
    if token:
        assert token not in out
    for rec in inst.logs():
        if str(rec.get("event", "")).startswith("email_"):
            assert email not in json.dumps(rec), rec


# --------------------------------------------------------------------------
# The capture server fixture on its own


def test_smtp_fixture_captures(smtp):
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as s:
        s.sendmail("from@example.test", ["to@example.test"],
                   b"Subject: hello\r\nFrom: from@example.test\r\nTo: to@example.test\r\n\r\n"
                   b".dot first\r\nbody\r\n")
    msg = smtp.wait_for(to="to@example.test", timeout=5)
    assert msg["Subject"] == "hello"
    assert smtp.text_of(msg) == ".dot first\r\nbody\r\n" or smtp.text_of(msg) == ".dot first\nbody\n"
    assert smtp.captured[0].mail_from == "from@example.test"
    assert smtp.captured[0].rcpt_tos == ["to@example.test"]
    assert len(smtp.messages) == 1
    with pytest.raises(AssertionError):
        smtp.wait_for(to="nobody@example.test", timeout=0.3)


def test_smtp_fixture_down_then_up(smtp_factory):
    cap = smtp_factory(start=False)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", cap.port), timeout=2).close()
    cap.start()
    with smtplib.SMTP("127.0.0.1", cap.port, timeout=10) as s:
        s.sendmail("a@example.test", ["b@example.test"], b"Subject: up\r\n\r\nx\r\n")
    assert cap.wait_for(to="b@example.test", timeout=5)["Subject"] == "up"


def test_smtp_fixture_auth(smtp_factory):
    cap = smtp_factory(auth=("u", "pw"))
    with smtplib.SMTP("127.0.0.1", cap.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPException):
            s.sendmail("a@example.test", ["b@example.test"], b"Subject: no\r\n\r\nx\r\n")
    with smtplib.SMTP("127.0.0.1", cap.port, timeout=10) as s:
        s.login("u", "pw")
        s.sendmail("a@example.test", ["b@example.test"], b"Subject: yes\r\n\r\nx\r\n")
    assert cap.wait_for_captured(to="b@example.test", timeout=5).auth_login == "u"


# --------------------------------------------------------------------------
# authd → SMTP


def test_signup_mail_over_smtp(authd, smtp):
    inst = authd(smtp_env(smtp))
    email = new_email()
    signup(inst, email)
    msg = smtp.wait_for(to=email, timeout=15)
    cap = smtp.find(to=email)[0]
    assert cap.mail_from == "auth@example.test"
    assert cap.rcpt_tos == [email]
    assert msg["Subject"] == "Verify your email"
    assert msg["From"] == "auth@example.test"
    assert msg["To"] == email
    assert msg["Date"] and msg["Message-ID"]
    assert re.fullmatch(r"<[0-9a-f-]{36}@example\.test>", msg["Message-ID"])
    assert msg.get_content_type() == "multipart/alternative"
    text = smtp.text_of(msg)
    m = LINK_RE.search(text)
    assert m, text
    # one sentence, a colon, a space, the link
    assert re.fullmatch(r"[^\n:]+: " + re.escape(m.group(0)) + r"\s*", text), text
    token = m.group(1)
    assert len(token) >= 16
    html = smtp.html_of(msg)
    assert f'<a href="{m.group(0)}">{m.group(0)}</a>' in html
    # the link is verbatim in the raw message too (api-flows §7.3)
    assert m.group(0).encode() in cap.raw
    assert b"\r\n" in cap.raw and b"\n" not in cap.raw.replace(b"\r\n", b"")

    rec = wait_log(inst, "email_sent", kind="verify_email")
    assert harness.UUID4_RE.match(rec["email_id"])
    assert_no_secrets_in_logs(inst, email, token)

    # the link works (api-flows §1.3)
    r = inst.get("/auth/verify-email", params={"token": token})
    if r.status_code != 404:
        assert r.status_code == 200, r.text


def test_duplicate_signup_sends_one_mail(authd, smtp):
    inst = authd(smtp_env(smtp))
    email = new_email()
    signup(inst, email)
    smtp.wait_for(to=email, timeout=15)
    signup(inst, email)  # taken: creates nothing, queues nothing
    time.sleep(2.5)
    assert len(smtp.find(to=email)) == 1


def test_smtp_auth(authd, smtp_factory):
    cap = smtp_factory(auth=("mailer", "s3cret-pw"))
    inst = authd(smtp_env(cap, EMAIL__SMTP_USERNAME="mailer", EMAIL__SMTP_PASSWORD="s3cret-pw"))
    email = new_email()
    signup(inst, email)
    got = cap.wait_for_captured(to=email, timeout=15)
    assert got.auth_login == "mailer"
    assert "s3cret-pw" not in "\n".join(inst.stdout_lines())


# --------------------------------------------------------------------------
# File transport (no EMAIL__MAILHOG_HOST)


def test_file_transport_writes_eml(authd):
    inst = authd({"EMAIL__PUBLIC_BASE_URL": BASE_URL})
    email = new_email()
    signup(inst, email)
    rec = wait_log(inst, "email_written_to_file", kind="verify_email")
    path = Path(rec["path"])
    if not path.is_absolute():
        path = inst.workdir / path
    assert path.name == f"{rec['email_id']}.eml"
    assert path.parent.name == "mail"
    # <data dir>/mail: the SQLite file's directory (./data on PostgreSQL)
    url = inst.env["DATABASE__URL"]
    data_dir = (Path(url[len("sqlite:///"):]).parent if url.startswith("sqlite:///")
                else inst.workdir / "data")
    assert path.resolve() == (data_dir / "mail" / path.name).resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "Verify your email"
    assert msg["To"] == email
    assert msg["From"] == "auth@localhost"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    m = LINK_RE.search(text)
    assert m, text
    assert m.group(0).encode() in path.read_bytes()
    assert_no_secrets_in_logs(inst, email, m.group(1))


# --------------------------------------------------------------------------
# The outbox: encryption, wiping, retries, crashes


def test_bodies_encrypted_then_wiped(authd, smtp_factory, world):
    cap = smtp_factory(start=False)  # down: the row waits in the outbox
    inst = authd(smtp_env(cap, AUTHD_TEST_EMAIL_RETRY_DIVISOR=30))
    email = new_email()
    signup(inst, email)
    row = wait_row(world, inst, lambda r: r["to_address"] == email)
    assert row["kind"] == "verify_email"
    assert row["subject"] == "Verify your email"
    assert row["status"] in ("pending", "failed")
    assert row["body_text"].startswith("enc2:")
    assert row["body_html"].startswith("enc2:")
    assert "verify-email" not in row["body_text"] and "auth.test" not in row["body_html"]
    assert row["expires_at"] is not None  # link mails never go out after the token expires

    cap.start()
    msg = cap.wait_for(to=email, timeout=30)
    token = LINK_RE.search(cap.text_of(msg)).group(1)
    sent = wait_row(world, inst, lambda r: r["to_address"] == email and r["status"] == "sent")
    assert sent["body_text"] is None and sent["body_html"] is None
    assert sent["sent_at"] is not None
    assert sent["last_error"] is None
    for r in outbox_rows(world, inst):
        assert token not in json.dumps(r)


def test_smtp_down_then_retried(authd, smtp_factory, world):
    cap = smtp_factory(start=False)
    inst = authd(smtp_env(cap, AUTHD_TEST_EMAIL_RETRY_DIVISOR=30))  # 1 s, 4 s, 20 s
    email = new_email()
    signup(inst, email)
    fail = wait_log(inst, "email_send_failed", attempt_count=1)
    assert fail["kind"] == "verify_email"
    assert fail["level"] == "warning"
    assert fail["error"]
    assert email not in fail["error"]
    row = wait_row(world, inst, lambda r: r["to_address"] == email and r["status"] == "failed")
    assert row["attempt_count"] >= 1 and row["last_error"]
    cap.start()
    cap.wait_for(to=email, timeout=30)
    rec = wait_log(inst, "email_sent", email_id=fail["email_id"])
    assert rec["attempt_count"] >= 2
    sent = wait_row(world, inst, lambda r: r["id"] == fail["email_id"] and r["status"] == "sent")
    assert sent["attempt_count"] == rec["attempt_count"]
    assert len(cap.find(to=email)) == 1


def test_sigkill_after_commit_loses_nothing(authd, smtp_factory):
    """The crash of the issue: commit, SIGKILL before the mail could go out
    (server down), restart with the server up: the mail arrives."""
    cap = smtp_factory(start=False)
    env = smtp_env(cap, AUTHD_TEST_EMAIL_RETRY_DIVISOR=30)
    first = authd(env)
    email = new_email()
    signup(first, email)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    cap.start()
    second = authd(env, share_with=first)
    cap.wait_for(to=email, timeout=40)
    time.sleep(1)
    assert len(cap.find(to=email)) == 1
    msg = cap.find(to=email)[0].message
    assert LINK_RE.search(cap.text_of(msg))
    assert second.alive()


def test_no_worker_only_queues(authd, smtp, world):
    env = smtp_env(smtp)
    api = authd(env, args=("serve", "--no-worker"))
    email = new_email()
    signup(api, email)
    time.sleep(2.5)
    assert smtp.find(to=email) == []
    rows = [r for r in outbox_rows(world, api) if r["to_address"] == email]
    assert len(rows) == 1 and rows[0]["status"] == "pending"
    assert api.stop() == 0
    worker = authd(env, share_with=api)
    smtp.wait_for(to=email, timeout=15)
    assert worker.alive()


def test_abandoned_after_four_failures(authd, smtp_factory, world):
    cap = smtp_factory(start=False)
    inst = authd(smtp_env(cap, AUTHD_TEST_EMAIL_RETRY_DIVISOR=600))  # 50 ms, 200 ms, 1 s
    email = new_email()
    signup(inst, email)
    rec = wait_log(inst, "email_abandoned", timeout=20)
    assert rec["reason"] == "max_attempts"
    assert rec["level"] == "error"
    assert rec["kind"] == "verify_email"
    # warning lines are buffered (about 50 ms), error lines are written at once
    wait_log(inst, "email_send_failed", email_id=rec["email_id"], attempt_count=4)
    fails = [r for r in email_logs(inst, "email_send_failed") if r["email_id"] == rec["email_id"]]
    assert [r["attempt_count"] for r in fails] == [1, 2, 3, 4]
    row = wait_row(world, inst, lambda r: r["id"] == rec["email_id"])
    assert row["status"] == "abandoned"
    assert row["attempt_count"] == 4
    assert row["body_text"] is None and row["body_html"] is None
    assert row["last_error"]
    cap.start()
    time.sleep(2.5)
    assert cap.find(to=email) == []


def test_expired_mail_abandoned(authd, smtp_factory, world):
    """The verify link lives 20 s: after the first failure the next attempt
    (30 s later) would come after expiry, so the row is abandoned at once."""
    cap = smtp_factory(start=False)
    inst = authd(smtp_env(cap, EMAIL__EMAIL_VERIFY_TTL_SECONDS=20))
    email = new_email()
    signup(inst, email)
    rec = wait_log(inst, "email_abandoned", timeout=15)
    assert rec["reason"] == "expired"
    row = wait_row(world, inst, lambda r: r["id"] == rec["email_id"])
    assert row["status"] == "abandoned"
    assert row["body_text"] is None


def test_two_workers_deliver_each_mail_once(authd, smtp):
    """Claims are exclusive (FOR UPDATE SKIP LOCKED on PostgreSQL, the single
    writer on SQLite): two worker processes on one database send each mail
    once."""
    env = smtp_env(smtp)
    a = authd(env)
    b = authd(env, share_with=a)
    emails = [new_email() for _ in range(16)]
    for i, email in enumerate(emails):
        signup(a if i % 2 == 0 else b, email)
    for email in emails:
        smtp.wait_for(to=email, timeout=30)
    time.sleep(2)
    for email in emails:
        assert len(smtp.find(to=email)) == 1, email


def test_sigterm_during_hung_smtp_exchange(authd, world):
    """A mail server that accepts and never answers holds one exchange for up
    to 10 s; SIGTERM aborts it at once, and the row goes back to the queue
    unattempted (no failure counted)."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # never accepted: the greeting never comes
    try:
        env = {"EMAIL__MAILHOG_HOST": "127.0.0.1", "EMAIL__MAILHOG_PORT": str(hung.getsockname()[1])}
        inst = authd(env)
        email = new_email()
        signup(inst, email)
        row = wait_row(world, inst, lambda r: r["to_address"] == email)
        time.sleep(1.5)  # the exchange is under way
        t0 = time.monotonic()
        assert inst.stop() == 0
        assert time.monotonic() - t0 < 6
        assert not email_logs(inst, "email_send_failed")
        row = wait_row(world, inst, lambda r: r["id"] == row["id"])
        assert row["status"] == "pending"
        assert row["attempt_count"] == 0
        assert row["body_text"].startswith("enc2:")
    finally:
        hung.close()


# --------------------------------------------------------------------------
# Rows written behind authd's back (no signup needed)


def _db_ts(seconds_from_now: float) -> str:
    t = time.time() + seconds_from_now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def insert_row(world, inst: harness.Authd, *, body_text: str, created_s: float = 0,
               status: str = "pending") -> str:
    rid = str(uuid.uuid4())
    cols = "id, kind, to_address, subject, body_text, status, attempt_count, next_attempt_at, " \
           "created_at"
    vals = (rid, "login_otp", "x@example.com", "Your login verification code", body_text,
            status, 0, _db_ts(created_s), _db_ts(created_s))
    url = inst.env["DATABASE__URL"]
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(url[len("sqlite:///"):], timeout=10)
        with con:
            con.execute(f"INSERT INTO email_outbox ({cols}) VALUES (?,?,?,?,?,?,?,?,?)", vals)
        con.close()
    else:
        lit = ", ".join(str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'"
                        for v in vals)
        world.pg.psql(f"INSERT INTO email_outbox ({cols}) VALUES ({lit})",
                      db=url.rsplit("/", 1)[1])
    return rid


def test_cleanup_deletes_week_old_rows(authd, world):
    first = authd()
    assert first.stop() == 0
    old = insert_row(world, first, body_text="enc2:x", created_s=-8 * 86400,
                     status="abandoned")
    young = insert_row(world, first, body_text="enc2:x", created_s=-6 * 86400, status="sent")
    inst = authd(share_with=first)  # the cleanup runs when the delivery thread starts
    rec = wait_log(inst, "email_outbox_cleaned", timeout=10)
    assert rec["deleted"] == 1
    ids = [r["id"] for r in outbox_rows(world, inst)]
    assert old not in ids and young in ids


@pytest.mark.parametrize("body", ["enc2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                  "plaintext is never ours"])
def test_unreadable_row_abandoned(authd, world, smtp, body):
    first = authd(smtp_env(smtp))
    assert first.stop() == 0
    rid = insert_row(world, first, body_text=body)
    inst = authd(smtp_env(smtp), share_with=first)
    rec = wait_log(inst, "email_abandoned", email_id=rid, timeout=10)
    assert rec["reason"] == "decrypt_failed"
    row = wait_row(world, inst, lambda r: r["id"] == rid and r["status"] == "abandoned")
    assert row["body_text"] is None
    assert smtp.find(to="x@example.com") == []
