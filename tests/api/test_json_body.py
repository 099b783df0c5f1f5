"""Declared JSON bodies and the body limit: api-core §0.2, §1.2, §1.3 (through POST /_test/echo)."""

import json

import pytest

from harness import chunked, new_cid

TOO_LARGE = {"detail": "Request body too large.", "code": "payload_too_large"}


def _echo(inst, body: bytes, content_type: str | None = "application/json", headers=None):
    h = dict(headers or {})
    if content_type is not None:
        h["Content-Type"] = content_type
    return inst.post("/_test/echo", content=body, headers=h)


def _assert_422_dev(r):
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"detail", "code"}
    assert body["code"] == "invalid_credentials"
    assert isinstance(body["detail"], str)
    assert body["detail"].startswith("Invalid request payload: "), body
    assert body["detail"].endswith("."), body
    assert len(body["detail"]) > len("Invalid request payload: .")


def _object_of_size(n: int) -> bytes:
    """A JSON object of exactly n bytes."""
    body = b'{"a":"' + b"x" * (n - 8) + b'"}'
    assert len(body) == n
    return body


# --------------------------------------------------------------------------- accepted


def test_echo_returns_the_parsed_object(server):
    obj = {"s": "héllo ✓ \"q\" \\ \n", "n": 1, "neg": -7, "f": 1.5, "b": True, "z": None,
           "l": [1, "x", {"k": []}], "o": {"k": "v", "empty": {}}, "u": "\U0001F600"}
    r = _echo(server, json.dumps(obj).encode())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"received": obj}


def test_echo_empty_object(server):
    r = _echo(server, b"{}")
    assert r.status_code == 200
    assert r.json() == {"received": {}}


def test_whitespace_around_object_is_fine(server):
    r = _echo(server, b' \n\t{ "a" : 1 }\n ')
    assert r.status_code == 200
    assert r.json() == {"received": {"a": 1}}


def test_escaped_unicode_is_decoded(server):
    r = _echo(server, b'{"a":"\\u00e9\\ud83d\\ude00"}')
    assert r.status_code == 200
    assert r.json() == {"received": {"a": "é\U0001F600"}}


@pytest.mark.parametrize("ctype", [
    "application/json",
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
    "APPLICATION/JSON",
    "application/vnd.foo+json",
    "application/problem+json; charset=utf-8",
    None,
])
def test_accepted_content_types(server, ctype):
    r = _echo(server, b'{"ok":true}', content_type=ctype)
    assert r.status_code == 200, (ctype, r.text)
    assert r.json() == {"received": {"ok": True}}


def test_chunked_body_below_limit_is_accepted(server):
    body = _object_of_size(10000)

    def gen():
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]
    r = server.post("/_test/echo", content=gen(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"received": json.loads(body)}


# --------------------------------------------------------------------------- rejected (422)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx",
                                   "application/json+foo", "text/json", "application/xml"])
def test_rejected_content_types(server, ctype):
    r = _echo(server, b'{"ok":true}', content_type=ctype)
    _assert_422_dev(r)


@pytest.mark.parametrize("body", [
    b"", b" ", b"{", b'{"a":', b"{a:1}", b"{'a':1}", b'{"a":1,}', b'{"a":1} x',
    b'{"a":1}{"b":2}', b'{"a":NaN}', b'{"a":01}', b'{"a":"\t"}', b'{"a":"\\x"}',
])
def test_malformed_json(server, body):
    _assert_422_dev(_echo(server, body))


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b"1", b"-1.5", b'"str"', b"null", b"true",
                                  b"false"])
def test_non_object_json(server, body):
    _assert_422_dev(_echo(server, body))


@pytest.mark.parametrize("body", [
    b'{"a":1,"a":2}',
    b'{"a":1,"a":1}',
    b'{"a":1,"b":2,"a":3}',
    b'{"o":{"k":1,"k":2}}',
    b'{"l":[{"k":1,"k":2}]}',
    b'{"a":1,"\\u0061":2}',
])
def test_duplicate_keys(server, body):
    _assert_422_dev(_echo(server, body))


@pytest.mark.parametrize("body", [
    b'{"a":"\xff"}',
    b'{"a":"\xc3"}',
    b'{"a":"\xc0\xaf"}',               # overlong
    b'{"a":"\xed\xa0\x80"}',           # UTF-16 surrogate encoded in UTF-8
    b'{"a":"\xf4\x90\x80\x80"}',       # above U+10FFFF
    b'{"\xfe":1}',
    b'{"a":"ok","b":"\x80"}',          # lone continuation byte
])
def test_invalid_utf8(server, body):
    _assert_422_dev(_echo(server, body))


def test_validation_detail_in_staging_is_exact(authd):
    inst = authd({"APP__ENVIRONMENT": "staging"})
    for body, ctype in [(b"{", "application/json"), (b"[]", "application/json"),
                        (b'{"a":1,"a":2}', "application/json"), (b'{"a":"\xff"}', None),
                        (b'{"a":1}', "text/plain")]:
        r = _echo(inst, body, content_type=ctype)
        assert r.status_code == 422, (body, r.text)
        assert r.json() == {"detail": "Invalid request payload.", "code": "invalid_credentials"}


def test_422_carries_correlation_id(server):
    cid = new_cid("json")
    r = _echo(server, b"[]", headers={"X-Correlation-ID": cid})
    assert r.status_code == 422
    assert r.headers.get("x-correlation-id") == cid


# --------------------------------------------------------------------------- body limit


def _post_raw(inst, body: bytes, *, te_chunked=False, extra=b"", declared_len=None):
    head = (b"POST /_test/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n" + extra)
    if te_chunked:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        payload = chunked(body, 8192)
    else:
        n = len(body) if declared_len is None else declared_len
        head += b"Content-Length: %d\r\n\r\n" % n
        payload = body
    parts = [head] + [payload[i:i + 16384] for i in range(0, len(payload), 16384)]
    return inst.raw(parts, timeout=20)


def _assert_413(resp, cid=None):
    assert resp is not None, "connection closed without a response"
    assert resp.status == 413, resp
    assert (resp.header("content-type") or "").startswith("application/json")
    assert resp.json() == TOO_LARGE
    if cid is not None:
        assert resp.header("x-correlation-id") == cid


def test_body_exactly_at_default_limit_is_accepted(server):
    body = _object_of_size(65536)
    r = _echo(server, body)
    assert r.status_code == 200, r.text[:300]
    assert r.json() == {"received": json.loads(body)}


def test_body_one_over_default_limit_is_413(server):
    r = _echo(server, _object_of_size(65537), headers={"X-Correlation-ID": "over-limit-1"})
    assert r.status_code == 413
    assert r.json() == TOO_LARGE
    assert r.headers.get("x-correlation-id") == "over-limit-1"


def test_large_content_length_body_is_413(server):
    cid = new_cid("big")
    resp = _post_raw(server, _object_of_size(300_000),
                     extra=b"X-Correlation-ID: " + cid.encode() + b"\r\n")
    _assert_413(resp, cid)
    assert server.get("/health/live").status_code == 200


def test_declared_content_length_over_limit_is_413_without_body(server):
    """Content-Length alone says too much: the server answers without waiting for a body."""
    resp = _post_raw(server, b"", declared_len=10_000_000)
    _assert_413(resp)
    assert server.get("/health/live").status_code == 200


def test_chunked_body_over_limit_is_413(server):
    cid = new_cid("chunk")
    resp = _post_raw(server, _object_of_size(100_000), te_chunked=True,
                     extra=b"X-Correlation-ID: " + cid.encode() + b"\r\n")
    _assert_413(resp, cid)
    assert server.get("/health/live").status_code == 200


def test_chunked_body_exactly_at_limit_is_accepted(server):
    body = _object_of_size(65536)
    resp = _post_raw(server, body, te_chunked=True)
    assert resp is not None and resp.status == 200, resp
    assert resp.json() == {"received": json.loads(body)}


def test_configured_body_limit(authd):
    inst = authd({"APP__MAX_BODY_BYTES": "2048"})
    r = _echo(inst, _object_of_size(2048))
    assert r.status_code == 200, r.text
    r = _echo(inst, _object_of_size(2049))
    assert r.status_code == 413
    assert r.json() == TOO_LARGE
    _assert_413(_post_raw(inst, _object_of_size(4096), te_chunked=True))
