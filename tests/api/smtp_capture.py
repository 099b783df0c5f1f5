"""An SMTP capture server for tests (aiosmtpd in a background thread).

Library use (the `smtp` / `smtp_factory` fixtures in conftest.py):

    cap = SmtpCapture()               # a free port on 127.0.0.1, not started
    cap.start()
    ...
    msg = cap.wait_for(to="a@example.com", timeout=10)   # email.message.EmailMessage
    msg["Subject"], cap.text_of(msg), cap.html_of(msg)
    cap.stop()

`SmtpCapture(port=P)` can be created before anything listens on P (a "mail
server down" test) and started later. `auth=("user", "pw")` makes the server
require AUTH (PLAIN/LOGIN over plain text, as a test catcher may).

Command line (used by the C unit test tests/unit/test_mail.c):

    python tests/api/smtp_capture.py --port N --dump DIR

prints `ready <port>` on stdout once it accepts connections, then writes every
message to DIR/<n>.eml (raw bytes as received, written to a temporary name and
renamed) and its envelope to DIR/<n>.env (`MAIL FROM` then each `RCPT TO`, one
per line), until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import email
import logging
import email.policy
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LOOPBACK = "127.0.0.1"

# aiosmtpd logs every session at INFO; keep test output quiet.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    auth_login: str | None = None
    received_at: float = field(default_factory=time.time)


class _Handler:
    def __init__(self, owner: "SmtpCapture"):
        self.owner = owner

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # AUTH is enforced here rather than with aiosmtpd's auth_required,
        # which warns about AUTH without TLS (intended in a test catcher).
        if self.owner.auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        login = None
        if getattr(session, "auth_data", None) is not None:
            ad = session.auth_data
            login = ad.login.decode() if isinstance(ad, LoginPassword) else str(ad)
        self.owner._add(Captured(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw),
                                 email.message_from_bytes(raw, policy=email.policy.default),
                                 login))
        return "250 Message accepted for delivery"


class SmtpCapture:
    def __init__(self, port: int | None = None, host: str = LOOPBACK,
                 auth: tuple[str, str] | None = None, dump_dir: str | None = None):
        self.host = host
        self.port = port or _free_port()
        self.auth = auth
        self.dump_dir = dump_dir
        self.captured: list[Captured] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    # -- lifecycle -------------------------------------------------------
    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and self.auth is not None
              and auth_data.login.decode() == self.auth[0]
              and auth_data.password.decode() == self.auth[1])
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    def start(self) -> "SmtpCapture":
        kw = {}
        if self.auth:
            kw = dict(authenticator=self._authenticator, auth_require_tls=False)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                      ready_timeout=10, **kw)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- captured mail ---------------------------------------------------
    def _add(self, c: Captured) -> None:
        with self._cond:
            self.captured.append(c)
            n = len(self.captured)
            self._cond.notify_all()
        if self.dump_dir:
            base = os.path.join(self.dump_dir, str(n))
            for suffix, data in ((".env", "\n".join([c.mail_from, *c.rcpt_tos]).encode() + b"\n"),
                                 (".eml", c.raw)):
                tmp = base + suffix + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, base + suffix)

    @property
    def messages(self) -> list[EmailMessage]:
        with self._cond:
            return [c.message for c in self.captured]

    def clear(self) -> None:
        with self._cond:
            self.captured.clear()

    def find(self, to: str | None = None, subject: str | None = None) -> list[Captured]:
        with self._cond:
            return [c for c in self.captured
                    if (to is None or to.lower() in [r.lower() for r in c.rcpt_tos])
                    and (subject is None or c.message["Subject"] == subject)]

    def wait_for(self, to: str | None = None, timeout: float = 10,
                 subject: str | None = None) -> EmailMessage:
        """The first message to `to` (and with `subject`, if given); raises
        AssertionError after `timeout` seconds."""
        c = self.wait_for_captured(to=to, timeout=timeout, subject=subject)
        return c.message

    def wait_for_captured(self, to: str | None = None, timeout: float = 10,
                          subject: str | None = None) -> Captured:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self.find(to, subject)
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no mail to {to!r} (subject {subject!r}) within {timeout}s; "
                        f"got {len(self.captured)} other message(s)")
                self._cond.wait(left)

    @staticmethod
    def text_of(msg: EmailMessage) -> str:
        part = msg.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @staticmethod
    def html_of(msg: EmailMessage) -> str | None:
        part = msg.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default=LOOPBACK)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dump", required=True, help="directory for <n>.eml and <n>.env")
    ap.add_argument("--auth", help="user:password; makes AUTH mandatory")
    a = ap.parse_args(argv)
    os.makedirs(a.dump, exist_ok=True)
    auth = tuple(a.auth.split(":", 1)) if a.auth else None
    cap = SmtpCapture(port=a.port, host=a.host, auth=auth, dump_dir=a.dump)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cap.start()
    print(f"ready {cap.port}", flush=True)
    while not stop.wait(0.2):
        pass
    cap.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
