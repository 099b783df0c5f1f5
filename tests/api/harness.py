"""Process and server helpers for the black-box API tests.

Everything here starts real processes: authd itself, and for the postgres
backend a private PostgreSQL cluster and a redis-server on free loopback
ports. Every process is stopped by its pid (never by name), from a pytest
finalizer and, as a last resort, from an atexit hook.
"""

from __future__ import annotations

import atexit
import glob
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable

import httpx

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"

# Sanitizer reports that fail a test when they show up on authd's stderr.
SANITIZER_PATTERNS = [
    re.compile(r"ERROR: AddressSanitizer"),
    re.compile(r"ERROR: LeakSanitizer"),
    re.compile(r"AddressSanitizer:DEADLYSIGNAL"),
    re.compile(r"runtime error: "),
    re.compile(r"UndefinedBehaviorSanitizer"),
]

# Environment variables that configure authd: stripped from the inherited
# environment so a developer's shell cannot leak into a test.
CONFIG_PREFIXES = (
    "APP__", "DATABASE__", "REDIS__", "JWT__", "OAUTH__", "SAML__", "RATE_LIMIT__",
    "PASSWORD_HASH__", "AUTH__", "SESSION_SECURITY__", "BROWSER_SESSIONS__",
    "SIGNING_KEYS__", "EMAIL__", "WEBHOOK__", "RETENTION__", "OTEL_",
)
CONFIG_NAMES = ("ADMIN_API_KEY",)

# A production configuration that passes every guardrail of config-ops §3
# (merge it into the overrides together with APP__ENVIRONMENT=production).
PROD_ENV = {
    "APP__ALLOWED_HOSTS": '["127.0.0.1"]',
    "APP__TEST_HOOKS": None,
    "SIGNING_KEYS__ENCRYPTION_KEY": "test-signing-encryption-key-0123456789",
    "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY": "test-refresh-hash-key-0123456789abcdef",
    "WEBHOOK__SECRET_ENCRYPTION_KEY": "test-webhook-encryption-key-0123456789",
    "EMAIL__PUBLIC_BASE_URL": "https://auth.example.com",
}

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# Every process this module started and has not reaped yet: pid -> stopper.
_LIVE: dict[int, Callable[[], None]] = {}
_LIVE_LOCK = threading.Lock()


def _register(pid: int, stopper: Callable[[], None]) -> None:
    with _LIVE_LOCK:
        _LIVE[pid] = stopper


def _unregister(pid: int) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(pid, None)


@atexit.register
def _stop_leftovers() -> None:
    with _LIVE_LOCK:
        stoppers = list(_LIVE.values())
    for stop in stoppers:
        try:
            stop()
        except Exception:
            pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


_BIN_OVERRIDE: Path | None = None


def configured_bin() -> Path:
    """AUTHD_BIN (default build/authd), relative to the repo root."""
    p = Path(os.environ.get("AUTHD_BIN", "build/authd"))
    if not p.is_absolute():
        p = REPO / p
    return p


def authd_bin() -> Path:
    return _BIN_OVERRIDE or configured_bin()


def snapshot_binary(dest_dir: Path) -> Path:
    """Copies the binary once per session, so a rebuild during the run cannot
    swap it under the tests; later authd_bin() calls return the copy."""
    global _BIN_OVERRIDE
    dest = Path(dest_dir) / "authd"
    shutil.copy2(configured_bin(), dest)
    _BIN_OVERRIDE = dest
    return dest


def clean_environ() -> dict[str, str]:
    env = {}
    for k, v in os.environ.items():
        ku = k.upper()
        if ku.startswith(CONFIG_PREFIXES) or ku in CONFIG_NAMES:
            continue
        env[k] = v
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def apply_overrides(env: dict[str, str], overrides: dict | None) -> dict[str, str]:
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def sanitizer_report(text: str) -> str | None:
    for pat in SANITIZER_PATTERNS:
        m = pat.search(text)
        if m:
            start = max(0, m.start() - 200)
            return text[start:start + 4000]
    return None


def wait_until(pred: Callable[[], object], timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def run_cli(args: Iterable[str], env: dict[str, str], cwd: str | Path, timeout: float = 60,
            stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Runs `authd <args>` to completion; fails on a sanitizer report."""
    cp = subprocess.run([str(authd_bin()), *args], env=env, cwd=str(cwd), input=stdin,
                        stdin=None if stdin is not None else subprocess.DEVNULL,
                        capture_output=True, timeout=timeout)
    cp.stdout_text = cp.stdout.decode("utf-8", "replace")
    cp.stderr_text = cp.stderr.decode("utf-8", "replace")
    rep = sanitizer_report(cp.stderr_text)
    if rep:
        raise AssertionError(f"sanitizer report from authd {' '.join(args)}:\n{rep}")
    return cp


# --------------------------------------------------------------------------
# Output capture


class _LineReader(threading.Thread):
    """Reads a pipe line by line into a list (bytes decoded as UTF-8)."""

    def __init__(self, stream, name: str):
        super().__init__(name=name, daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.raw: list[bytes] = []
        self.cond = threading.Condition()

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            with self.cond:
                self.raw.append(raw)
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.cond.notify_all()
        self.stream.close()

    def snapshot(self) -> list[str]:
        with self.cond:
            return list(self.lines)

    def raw_snapshot(self) -> list[bytes]:
        with self.cond:
            return list(self.raw)


class AuthdDied(AssertionError):
    pass


class Authd:
    """One authd process. Created by the `authd` fixture factory."""

    def __init__(self, env: dict[str, str], workdir: Path, args=("serve",)):
        self.env = env
        self.workdir = Path(workdir)
        self.args = tuple(args)
        self.host = env.get("APP__HOST", LOOPBACK)
        self.port = int(env.get("APP__PORT", "8000"))
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.process: subprocess.Popen | None = None
        self._out: _LineReader | None = None
        self._err: _LineReader | None = None
        self._client: httpx.Client | None = None
        self.stopped_by_test = False
        self.returncode: int | None = None

    # -- process ---------------------------------------------------------
    def start(self) -> "Authd":
        self.process = subprocess.Popen(
            [str(authd_bin()), *self.args], env=self.env, cwd=str(self.workdir),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        pid = self.process.pid
        _register(pid, self._kill_quietly)
        self._out = _LineReader(self.process.stdout, f"authd-{pid}-out")
        self._err = _LineReader(self.process.stderr, f"authd-{pid}-err")
        self._out.start()
        self._err.start()
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 60) -> None:
        """Waits until GET /health/live gets an HTTP answer (any status)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                self._join_readers()
                raise AuthdDied(f"authd exited with {self.process.returncode} before serving\n"
                                + self.output_tail())
            try:
                httpx.get(self.base_url + "/health/live", timeout=2)
                return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AuthdDied(f"authd did not answer /health/live within {timeout}s\n"
                                + self.output_tail())
            time.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.process.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            rc = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reaped(rc)
        return rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        """Sends `sig` and waits; returns the exit code (None if still running)."""
        self.stopped_by_test = True
        self.send_signal(sig)
        return self.wait(timeout)

    def _reaped(self, rc: int) -> None:
        self.returncode = rc
        _unregister(self.process.pid)
        self._join_readers()
        if self._client is not None:
            self._client.close()
            self._client = None

    def _join_readers(self) -> None:
        for r in (self._out, self._err):
            if r is not None:
                r.join(timeout=5)

    def _kill_quietly(self) -> None:
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def finish(self) -> list[str]:
        """Teardown: stops the process, returns the problems found."""
        problems = []
        if self.process is None:
            return problems
        if self.alive():
            self.send_signal(signal.SIGTERM)
            grace = int(self.env.get("APP__SHUTDOWN_GRACE_SECONDS", "10") or 10)
            rc = self.wait(grace + 10)
            if rc is None:
                os.kill(self.process.pid, signal.SIGKILL)
                rc = self.process.wait(timeout=10)
                self._reaped(rc)
                problems.append(f"authd pid {self.pid} ignored SIGTERM; killed")
            elif rc != 0:
                problems.append(f"authd pid {self.pid} exited {rc} on SIGTERM at teardown")
        else:
            if self.returncode is None:
                self._reaped(self.process.returncode)
            if not self.stopped_by_test:
                problems.append(f"authd pid {self.pid} died during the test "
                                f"(exit {self.returncode})")
        rep = sanitizer_report(self.stderr_text())
        if rep:
            problems.append(f"sanitizer report on authd stderr:\n{rep}")
        if problems:
            problems.append(self.output_tail())
        return problems

    # -- output ----------------------------------------------------------
    def stdout_lines(self) -> list[str]:
        return self._out.snapshot() if self._out else []

    def stdout_raw(self) -> list[bytes]:
        return self._out.raw_snapshot() if self._out else []

    def stderr_text(self) -> str:
        return "\n".join(self._err.snapshot()) if self._err else ""

    def all_output(self) -> str:
        return "\n".join(self.stdout_lines()) + "\n" + self.stderr_text()

    def output_tail(self, n: int = 40) -> str:
        out = self.stdout_lines()[-n:]
        err = self._err.snapshot()[-n:] if self._err else []
        return ("--- authd stdout (tail) ---\n" + "\n".join(out)
                + "\n--- authd stderr (tail) ---\n" + "\n".join(err))

    def logs(self) -> list[dict]:
        """Parsed JSON log lines (lines that are not JSON objects are skipped)."""
        res = []
        for line in self.stdout_lines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                res.append(obj)
        return res

    def wait_for_log(self, pred: Callable[[dict], bool], timeout: float = 5) -> dict | None:
        def find():
            for rec in self.logs():
                if pred(rec):
                    return rec
            return None
        return wait_until(find, timeout)

    def request_log(self, correlation_id: str, timeout: float = 5) -> dict:
        rec = self.wait_for_log(lambda r: r.get("event") == "request_completed"
                                and r.get("correlation_id") == correlation_id, timeout)
        assert rec is not None, (f"no request_completed log line with correlation_id "
                                 f"{correlation_id!r}\n" + self.output_tail())
        return rec

    # -- HTTP ------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=15)
        return self._client

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        return self.client.request(method, path, **kw)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.client.post(path, **kw)

    def delete(self, path: str, **kw) -> httpx.Response:
        return self.client.request("DELETE", path, **kw)

    def patch(self, path: str, **kw) -> httpx.Response:
        return self.client.request("PATCH", path, **kw)

    def raw(self, data: bytes | list[bytes], timeout: float = 15) -> "RawResponse | None":
        return raw_request(LOOPBACK, self.port, data, timeout=timeout)


# --------------------------------------------------------------------------
# Raw HTTP over a socket, for requests httpx would normalise away


class RawResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_list(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<RawResponse {self.status} {self.headers!r} {self.body[:200]!r}>"


def _parse_response(buf: bytes, head_only: bool = False) -> tuple[RawResponse | None, bool]:
    """Returns (response, complete). response None while headers are incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, False
    head = buf[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    rest = buf[end + 4:]
    resp = RawResponse(status, reason, headers, b"")
    if head_only or status in (204, 304) or 100 <= status < 200:
        return resp, True
    cl = resp.header("content-length")
    te = (resp.header("transfer-encoding") or "").lower()
    if cl is not None:
        n = int(cl)
        resp.body = rest[:n]
        return resp, len(rest) >= n
    if "chunked" in te:
        body, pos = b"", 0
        while True:
            nl = rest.find(b"\r\n", pos)
            if nl < 0:
                resp.body = body
                return resp, False
            size = int(rest[pos:nl].split(b";")[0], 16)
            if size == 0:
                resp.body = body
                return resp, True
            if len(rest) < nl + 2 + size + 2:
                resp.body = body
                return resp, False
            body += rest[nl + 2:nl + 2 + size]
            pos = nl + 2 + size + 2
    resp.body = rest
    return resp, False  # until EOF


def raw_request(host: str, port: int, data: bytes | list[bytes], timeout: float = 15,
                head_only: bool = False) -> RawResponse | None:
    """Sends `data` (bytes, or a list of parts sent one by one) and reads one response.

    Stops sending as soon as the server starts answering (so an early 413/431
    is read instead of being lost to a reset). Returns None when the server
    closed the connection without any response.
    """
    parts = [data] if isinstance(data, (bytes, bytearray)) else list(data)
    buf = b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            for part in parts:
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    break
                view = memoryview(part)
                while view:
                    r, w, _ = select.select([s], [s], [], timeout)
                    if r:
                        break
                    n = s.send(view[:65536])
                    view = view[n:]
                if view:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            resp, complete = _parse_response(buf, head_only)
            if resp is not None and complete:
                return resp
    resp, _ = _parse_response(buf, head_only)
    return resp


def chunked(body: bytes, size: int = 4096) -> bytes:
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def new_cid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------
# PostgreSQL and Redis test servers


def find_pg_bindir() -> Path:
    dirs = glob.glob("/usr/lib/postgresql/*/bin")

    def version(d: str):
        v = Path(d).parent.name
        return tuple(int(x) for x in re.findall(r"\d+", v))

    for d in sorted(dirs, key=version, reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "postgres").exists():
            return Path(d)
    raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin "
                       "(run scripts/install-deps)")


class PgCluster:
    """A private PostgreSQL cluster run as the `postgres` system user."""

    def __init__(self, port: int | None = None):
        self.bindir = find_pg_bindir()
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="authd-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        pw = pwd.getpwnam("postgres")
        self.sock.mkdir()
        for p in (self.root, self.sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        self._initdb()

    def _as_postgres(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd]

    def _initdb(self) -> None:
        cp = subprocess.run(self._as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync"),
            cwd=str(self.root), capture_output=True, text=True, timeout=120)
        if cp.returncode != 0:
            raise RuntimeError(f"initdb failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")

    def start(self, timeout: float = 60, durable: bool = False) -> "PgCluster":
        """durable=False (tests) trades crash safety for speed; benchmarks
        pass durable=True to run with PostgreSQL's own commit settings."""
        logf = open(self.log, "ab")
        fast = [] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                   "-c", "full_page_writes=off"]
        self.proc = subprocess.Popen(self._as_postgres(
            str(self.bindir / "postgres"), "-D", str(self.data), "-k", str(self.sock),
            "-p", str(self.port), "-c", "listen_addresses=127.0.0.1", *fast,
            "-c", "max_connections=300"),
            cwd=str(self.root), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            start_new_session=True)
        logf.close()
        _register(self.proc.pid, self.stop)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited {self.proc.returncode}:\n"
                                   + self.log.read_text(errors="replace")[-4000:])
            cp = subprocess.run([str(self.bindir / "pg_isready"), "-h", LOOPBACK, "-p",
                                 str(self.port), "-U", "postgres", "-d", "postgres"],
                                capture_output=True, timeout=10)
            if cp.returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postgres did not become ready\n"
                                   + self.log.read_text(errors="replace")[-4000:])
            time.sleep(0.1)
        self.pid = int((self.data / "postmaster.pid").read_text().split("\n")[0])
        return self

    def stop(self) -> None:
        """Fast shutdown of the postmaster (by pid), then reaps runuser."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.pid is not None:
                try:
                    os.kill(self.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
            else:
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                if self.pid is not None:
                    try:
                        os.kill(self.pid, signal.SIGQUIT)
                    except ProcessLookupError:
                        pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        _unregister(self.proc.pid)
        self.proc = None
        self.pid = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, db: str = "postgres") -> str:
        cp = subprocess.run([str(self.bindir / "psql"), "-h", LOOPBACK, "-p", str(self.port),
                             "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-X", "-A",
                             "-t", "-c", sql], capture_output=True, text=True, timeout=60)
        if cp.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed:\n{cp.stderr}")
        return cp.stdout

    def create_database(self, name: str | None = None) -> str:
        name = name or f"authd_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def url(self, db: str) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{db}"


class RedisServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="authd-redis-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, timeout: float = 30) -> "RedisServer":
        logf = open(self.root / "redis.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            cwd=str(self.root), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            start_new_session=True)
        logf.close()
        _register(self.proc.pid, self.stop)
        ok = wait_until(lambda: self.proc.poll() is not None or self.ping(), timeout)
        if self.proc.poll() is not None or not ok:
            log = (self.root / "redis.log").read_text(errors="replace")
            self.stop()
            raise RuntimeError(f"redis-server did not start:\n{log[-4000:]}")
        return self

    def ping(self) -> bool:
        try:
            return self.cli("PING").strip() == "PONG"
        except Exception:
            return False

    def cli(self, *args: str) -> str:
        cp = subprocess.run(["redis-cli", "-h", LOOPBACK, "-p", str(self.port), *args],
                            capture_output=True, text=True, timeout=10)
        if cp.returncode != 0:
            raise RuntimeError(f"redis-cli {args} failed: {cp.stderr}")
        return cp.stdout

    def flushall(self) -> None:
        self.cli("FLUSHALL")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _unregister(self.proc.pid)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------
# The test world: backend servers plus the recipe for an authd environment


class World:
    def __init__(self, backend: str, base_dir: Path):
        self.backend = backend
        self.base_dir = base_dir
        self.pg: PgCluster | None = None
        self.redis: RedisServer | None = None

    def start(self) -> None:
        if self.backend == "postgres":
            self.pg = PgCluster().start()
            self.redis = RedisServer().start()

    def close(self) -> None:
        for srv in (self.redis, self.pg):
            if srv is not None:
                srv.destroy()

    def new_workdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="inst-", dir=self.base_dir))

    def new_env(self, overrides: dict | None = None, workdir: Path | None = None,
                fresh_db: bool = True) -> tuple[dict[str, str], Path]:
        """An environment for one authd instance (fresh database, free port)."""
        workdir = workdir or self.new_workdir()
        env = clean_environ()
        env.update({
            "APP__ENVIRONMENT": "development",
            "APP__HOST": LOOPBACK,
            "APP__PORT": str(free_port()),
            "APP__TEST_HOOKS": "true",
            "APP__SHUTDOWN_GRACE_SECONDS": "10",
            # Every request of a test comes from 127.0.0.1: keep the per-IP
            # limiter out of the way of tests that are not about it.
            "RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE": "1000000",
            "DATABASE__URL": f"sqlite:///{workdir}/data/authd.db",
        })
        if self.backend == "postgres" and fresh_db:
            env["DATABASE__URL"] = self.pg.url(self.pg.create_database())
            self.redis.flushall()
            env["REDIS__URL"] = self.redis.url
        return apply_overrides(env, overrides), workdir

    def migrate(self, env: dict[str, str], workdir: Path) -> None:
        cp = run_cli(["migrate"], env, workdir, timeout=120)
        if cp.returncode != 0:
            raise AssertionError(f"authd migrate exited {cp.returncode}\n"
                                 f"stdout:\n{cp.stdout_text}\nstderr:\n{cp.stderr_text}")
