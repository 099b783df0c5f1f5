"""Framework-level errors and routing: api-core §0.3, §1.1, §1.3; test-only routes."""

import pytest

from harness import new_cid

NOT_FOUND = {"detail": "Not Found", "code": "not_found"}
METHOD_NOT_ALLOWED = {"detail": "Method Not Allowed", "code": "method_not_allowed"}


def _is_json(r):
    return r.headers.get("content-type", "").startswith("application/json")


@pytest.mark.parametrize("path", ["/nope", "/health", "/health/livee", "/auth/nothing-here",
                                  "/", "/health/live/extra"])
def test_unknown_path_is_404(server, path):
    r = server.get(path)
    assert r.status_code == 404
    assert _is_json(r)
    assert r.json() == NOT_FOUND


def test_unknown_path_with_other_method_is_404_not_405(server):
    r = server.post("/definitely/not/a/route", content=b"{}")
    assert r.status_code == 404
    assert r.json() == NOT_FOUND


@pytest.mark.parametrize("path", ["/health/live/", "/health/ready/"])
def test_trailing_slash_is_404_without_redirect(server, path):
    r = server.get(path)
    assert r.status_code == 404
    assert r.json() == NOT_FOUND
    assert "location" not in r.headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_get_route_is_405(server, method):
    r = server.request(method, "/health/live", content=b"{}")
    assert r.status_code == 405
    assert _is_json(r)
    assert r.json() == METHOD_NOT_ALLOWED
    assert "allow" not in r.headers


def test_head_on_get_route_is_405(server):
    r = server.request("HEAD", "/health/live")
    assert r.status_code == 405
    assert "allow" not in r.headers


def test_options_is_405_and_sends_no_cors(server):
    r = server.request("OPTIONS", "/health/ready", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 405
    assert r.json() == METHOD_NOT_ALLOWED
    assert "allow" not in r.headers
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]


def test_get_on_post_only_test_route_is_405(server):
    r = server.get("/_test/echo")
    assert r.status_code == 405
    assert r.json() == METHOD_NOT_ALLOWED


def test_test_routes_are_404_without_the_flag(authd):
    inst = authd({"APP__TEST_HOOKS": None})
    r = inst.post("/_test/echo", json={"a": 1})
    assert r.status_code == 404
    assert r.json() == NOT_FOUND
    r = inst.get("/_test/sleep?ms=1")
    assert r.status_code == 404
    assert r.json() == NOT_FOUND


def test_test_routes_are_404_with_flag_false(authd):
    inst = authd({"APP__TEST_HOOKS": "false"})
    assert inst.post("/_test/echo", json={"a": 1}).status_code == 404
    assert inst.get("/_test/sleep?ms=1").status_code == 404


def test_test_routes_exist_with_the_flag(server):
    r = server.post("/_test/echo", json={"a": 1})
    assert r.status_code == 200
    assert r.json() == {"received": {"a": 1}}


def test_error_responses_carry_correlation_id(server):
    for method, path in [("GET", "/nope"), ("POST", "/health/live"), ("OPTIONS", "/health/live")]:
        cid = new_cid("err")
        r = server.request(method, path, headers={"X-Correlation-ID": cid})
        assert r.status_code in (404, 405)
        assert r.headers.get("x-correlation-id") == cid, (method, path)


def test_server_keeps_serving_after_errors(server):
    for _ in range(20):
        assert server.get("/nope").status_code == 404
        assert server.post("/health/live").status_code == 405
    r = server.get("/health/live")
    assert r.status_code == 200 and r.json() == {"status": "live"}


def test_malformed_request_line_does_not_kill_the_server(server):
    for junk in [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
                 b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                 b"\x00\x01\x02\xff\r\n\r\n"]:
        resp = server.raw(junk, timeout=5)
        if resp is not None:
            assert resp.status >= 400, (junk, resp)
    r = server.get("/health/live")
    assert r.status_code == 200
