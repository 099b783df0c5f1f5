"""Concurrency and process lifecycle: worker-pool parking, keep-alive, graceful SIGTERM."""

import signal
import socket
import threading
import time

import httpx
import pytest

from harness import LOOPBACK


class Background:
    """Runs one HTTP request in a thread; .result is the response or the exception."""

    def __init__(self, url, timeout=30):
        self.result = None
        self.finished_at = None
        self.thread = threading.Thread(target=self._run, args=(url, timeout), daemon=True)
        self.thread.start()

    def _run(self, url, timeout):
        try:
            self.result = httpx.get(url, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.result = e
        self.finished_at = time.monotonic()

    def done(self):
        return not self.thread.is_alive()

    def join(self, timeout):
        self.thread.join(timeout)
        return self.done()


def _refused(port):
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- /_test/sleep


def test_sleep_answers_after_the_delay(server):
    t0 = time.monotonic()
    r = server.get("/_test/sleep?ms=300")
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert r.json() == {"slept_ms": 300}
    assert elapsed >= 0.29
    assert elapsed < 10


def test_sleep_zero(server):
    r = server.get("/_test/sleep?ms=0")
    assert r.status_code == 200
    assert r.json() == {"slept_ms": 0}


@pytest.mark.parametrize("query", ["ms=-1", "ms=10001", "ms=abc", "ms=", "ms=1.5", "",
                                   "ms=99999999999999999999", "ms=1e3", "ms=%2010", "ms=0x10"])
def test_sleep_rejects_bad_ms(server, query):
    r = server.get("/_test/sleep" + ("?" + query if query else ""))
    assert r.status_code == 422, (query, r.status_code, r.text)
    body = r.json()
    assert body["code"] == "invalid_credentials"
    assert body["detail"].startswith("Invalid request payload")


def test_sleep_request_does_not_block_other_connections(server):
    """While one connection is parked for 3 s, 20 /health/live on new connections answer."""
    bg = Background(server.base_url + "/_test/sleep?ms=3000")
    time.sleep(0.3)
    assert not bg.done(), f"sleep request finished early: {bg.result!r}"
    t0 = time.monotonic()
    for _ in range(20):
        r = httpx.get(server.base_url + "/health/live", timeout=5)   # a new connection each
        assert r.status_code == 200
    elapsed = time.monotonic() - t0
    assert not bg.done(), "health checks were served only after the sleep request ended"
    assert elapsed < 2.0, f"20 health checks took {elapsed:.2f}s"
    assert bg.join(15)
    assert isinstance(bg.result, httpx.Response), bg.result
    assert bg.result.status_code == 200 and bg.result.json() == {"slept_ms": 3000}


def test_parallel_sleeps_all_complete(server):
    bgs = [Background(server.base_url + "/_test/sleep?ms=500") for _ in range(6)]
    for bg in bgs:
        assert bg.join(30)
        assert isinstance(bg.result, httpx.Response), bg.result
        assert bg.result.status_code == 200
        assert bg.result.json() == {"slept_ms": 500}


def test_keep_alive_connection_serves_many_requests(server):
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        for i in range(50):
            path = ("/health/live", "/nope", "/health/ready")[i % 3]
            r = c.get(path)
            assert r.status_code in (200, 404)
        r = c.post("/_test/echo", json={"i": 1})
        assert r.json() == {"received": {"i": 1}}


# --------------------------------------------------------------------------- shutdown


def test_sigterm_idle_exits_zero(server):
    rc = server.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, server.output_tail()


def test_sigterm_drains_in_flight_request(authd):
    inst = authd({"APP__SHUTDOWN_GRACE_SECONDS": "10"})
    bg = Background(inst.base_url + "/_test/sleep?ms=1500")
    time.sleep(0.4)
    assert not bg.done(), bg.result
    t_sig = time.monotonic()
    inst.stopped_by_test = True
    inst.send_signal(signal.SIGTERM)

    # new connections are refused shortly after, while the old request still runs
    refused_while_alive = False
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and inst.alive():
        if _refused(inst.port):
            refused_while_alive = inst.alive()
            break
        time.sleep(0.05)

    assert bg.join(15), "in-flight request never completed"
    assert isinstance(bg.result, httpx.Response), f"in-flight request failed: {bg.result!r}"
    assert bg.result.status_code == 200
    assert bg.result.json() == {"slept_ms": 1500}

    rc = inst.wait(timeout=10 + 5)
    assert rc == 0, f"exit code {rc}\n" + inst.output_tail()
    assert time.monotonic() - t_sig < 10 + 5
    assert refused_while_alive, "listening socket stayed open during the drain"


def test_shutdown_grace_bounds_the_drain(authd):
    inst = authd({"APP__SHUTDOWN_GRACE_SECONDS": "1"})
    bg = Background(inst.base_url + "/_test/sleep?ms=8000")
    time.sleep(0.4)
    t_sig = time.monotonic()
    rc = inst.stop(signal.SIGTERM, timeout=7)
    elapsed = time.monotonic() - t_sig
    assert rc is not None, "authd still running 7 s after SIGTERM with a 1 s grace"
    assert elapsed < 6, f"exit took {elapsed:.1f}s with a 1 s grace"
    bg.join(10)
    assert not (isinstance(bg.result, httpx.Response) and bg.result.status_code == 200), \
        "an 8 s request completed although the grace period was 1 s"


def test_process_refuses_connections_after_exit(server):
    port = server.port
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    assert _refused(port)
