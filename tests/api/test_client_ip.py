"""Client IP resolution (api-core §3.4), observed through `client_ip` of request_completed.

The X-Forwarded-For addresses below are only strings in a header: every
connection goes to 127.0.0.1.
"""

import pytest

from harness import new_cid

TRUST_LOOPBACK = '["127.0.0.0/8"]'


def _client_ip(inst, xff=None, extra=None):
    """Sends GET /health/live over a raw socket (header values exactly as given)."""
    cid = new_cid("ip")
    headers = {"X-Correlation-ID": cid}
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    headers.update(extra or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    resp = inst.raw(("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head
                     + "Connection: close\r\n\r\n").encode())
    assert resp is not None and resp.status == 200, resp
    return inst.request_log(cid)["client_ip"]


def test_no_forwarded_header_uses_peer(server):
    assert _client_ip(server) == "127.0.0.1"


@pytest.mark.parametrize("xff", ["1.2.3.4", "1.2.3.4, 5.6.7.8", "garbage", "127.0.0.5"])
def test_untrusted_peer_ignores_forwarded_for(server, xff):
    assert _client_ip(server, xff) == "127.0.0.1"


def test_loopback_is_not_trusted_implicitly(authd):
    inst = authd({"APP__TRUSTED_PROXY_CIDRS": '["10.0.0.0/8"]'})
    assert _client_ip(inst, "1.2.3.4") == "127.0.0.1"


@pytest.fixture
def proxied(authd):
    return authd({"APP__TRUSTED_PROXY_CIDRS": TRUST_LOOPBACK})


@pytest.mark.parametrize("xff,expected", [
    ("1.2.3.4", "1.2.3.4"),
    ("1.2.3.4, 5.6.7.8", "5.6.7.8"),                 # rightmost untrusted
    ("1.2.3.4,5.6.7.8", "5.6.7.8"),
    ("  1.2.3.4 ,   5.6.7.8  ", "5.6.7.8"),          # trimmed
    ("1.2.3.4, 127.0.0.9", "1.2.3.4"),               # trusted hop skipped
    ("9.9.9.9, 1.2.3.4, 127.0.0.2, 127.0.0.3", "1.2.3.4"),
    ("127.0.0.2, 127.0.0.3", "127.0.0.2"),           # all trusted -> leftmost
    ("127.0.0.7", "127.0.0.7"),
    ("1.2.3.4, 5.6.7.8:1234", "1.2.3.4"),            # entry with port dropped
    ("1.2.3.4:80", "127.0.0.1"),                     # nothing left -> peer
    ("garbage, 1.2.3.4", "1.2.3.4"),
    ("1.2.3.4, garbage", "1.2.3.4"),
    ("garbage", "127.0.0.1"),
    ("", "127.0.0.1"),
    (" , ,", "127.0.0.1"),
    ("1.2.3.4, 256.1.1.1", "1.2.3.4"),
    ("1.2.3.4, 1.2.3", "1.2.3.4"),
    ("1.2.3.4, unknown", "1.2.3.4"),
    ("1.2.3.4, [2001:db8::1]:443", "1.2.3.4"),       # bracketed v6 with port dropped
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),         # canonical IPv6
    ("1.2.3.4, 2001:0db8:0000::0001", "2001:db8::1"),
])
def test_trusted_proxy_forwarded_for(proxied, xff, expected):
    assert _client_ip(proxied, xff) == expected


def test_other_forwarding_headers_are_ignored(proxied):
    ip = _client_ip(proxied, None, {"Forwarded": "for=1.2.3.4", "X-Real-IP": "5.6.7.8",
                                    "X-Client-IP": "9.9.9.9"})
    assert ip == "127.0.0.1"


def test_multiple_trusted_cidrs(authd):
    inst = authd({"APP__TRUSTED_PROXY_CIDRS": '["127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"]'})
    assert _client_ip(inst, "9.9.9.9, 10.1.2.3") == "9.9.9.9"
    assert _client_ip(inst, "9.9.9.9, 2001:db8::5, 10.0.0.1") == "9.9.9.9"
    assert _client_ip(inst, "10.9.9.9, 10.1.2.3") == "10.9.9.9"
    assert _client_ip(inst, "8.8.8.8, 11.0.0.1") == "11.0.0.1"


def test_invalid_cidrs_are_ignored(authd):
    inst = authd({"APP__TRUSTED_PROXY_CIDRS": '["not-a-cidr", "300.0.0.0/8", "", "127.0.0.0/8"]'})
    assert _client_ip(inst, "1.2.3.4") == "1.2.3.4"


def test_host_bits_in_cidr_are_allowed(authd):
    inst = authd({"APP__TRUSTED_PROXY_CIDRS": '["127.0.0.1/8"]'})
    assert _client_ip(inst, "1.2.3.4, 127.9.9.9") == "1.2.3.4"


def test_single_host_cidr(authd):
    inst = authd({"APP__TRUSTED_PROXY_CIDRS": '["127.0.0.1/32"]'})
    assert _client_ip(inst, "1.2.3.4") == "1.2.3.4"
    # 127.0.0.9 is not inside 127.0.0.1/32: it is the rightmost untrusted entry
    assert _client_ip(inst, "1.2.3.4, 127.0.0.9") == "127.0.0.9"


def test_narrow_cidr_excluding_peer_ignores_header(authd):
    inst = authd({"APP__TRUSTED_PROXY_CIDRS": '["127.0.0.2/32"]'})
    assert _client_ip(inst, "1.2.3.4") == "127.0.0.1"


def test_repeated_forwarded_for_headers(proxied):
    """Two X-Forwarded-For lines are one list (RFC 9110 §5.3): a proxy that appends its own
    line must not be bypassed by a client-supplied first line."""
    cid = new_cid("ip")
    resp = proxied.raw(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"X-Correlation-ID: " + cid.encode() + b"\r\n"
                       b"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n"
                       b"Connection: close\r\n\r\n")
    assert resp is not None and resp.status == 200
    assert proxied.request_log(cid)["client_ip"] == "5.6.7.8"
