"""Host allow-list: api-core §3.5, §0.3 (host check before routing)."""

import pytest

ALLOW = '["auth.example.com", "*.internal.example.com", "127.0.0.1"]'


def _host(inst, host, path="/health/live", method="GET"):
    return inst.request(method, path, headers={"Host": host})


def _assert_rejected(r):
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers.get("content-type") == "text/plain; charset=utf-8"
    assert r.text == "Invalid host header"
    assert "location" not in r.headers


@pytest.fixture
def hosted(authd):
    return authd({"APP__ALLOWED_HOSTS": ALLOW})


@pytest.mark.parametrize("host", [
    "auth.example.com",
    "auth.example.com:8443",
    "auth.example.com:80",
    "a.internal.example.com",
    "x.y.internal.example.com",
    "a.internal.example.com:9000",
    "127.0.0.1",
])
def test_allowed_hosts(hosted, host):
    r = _host(hosted, host)
    assert r.status_code == 200, (host, r.text)
    assert r.json() == {"status": "live"}


@pytest.mark.parametrize("host", [
    "evil.example.com",
    "example.com",
    "internal.example.com",             # bare suffix of a wildcard
    "internal.example.com:443",
    "badinternal.example.com",          # ends with the suffix but not ".suffix"
    "auth.example.com.evil.com",
    "xauth.example.com",
    "sub.auth.example.com",             # exact entry, no implied subdomains
    "localhost",
    "127.0.0.2",
])
def test_rejected_hosts(hosted, host):
    _assert_rejected(_host(hosted, host))


def test_rejection_happens_before_routing(hosted):
    _assert_rejected(_host(hosted, "evil.example.com", path="/no/such/route"))
    _assert_rejected(_host(hosted, "evil.example.com", path="/health/live", method="POST"))
    _assert_rejected(_host(hosted, "evil.example.com", path="/health/ready"))
    _assert_rejected(_host(hosted, "evil.example.com", path="/metrics"))


def test_rejection_happens_before_body_validation(hosted):
    r = hosted.post("/_test/echo", content=b"[not json",
                    headers={"Host": "evil.example.com", "Content-Type": "application/json"})
    _assert_rejected(r)


def test_allowed_host_still_routes_normally(hosted):
    r = _host(hosted, "auth.example.com", path="/nope")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found", "code": "not_found"}


def test_missing_host_header_is_rejected_when_list_is_set(hosted):
    resp = hosted.raw(b"GET /health/live HTTP/1.0\r\n\r\n")
    assert resp is not None
    assert resp.status == 400, resp


@pytest.mark.parametrize("hosts", ['["*"]', '["auth.example.com", "*"]'])
def test_star_allows_any_host(authd, hosts):
    inst = authd({"APP__ALLOWED_HOSTS": hosts})
    for h in ("evil.example.com", "anything:1234", "auth.example.com"):
        r = _host(inst, h)
        assert r.status_code == 200, h
        assert r.json() == {"status": "live"}


@pytest.mark.parametrize("hosts", [None, "[]", '["  ", ""]'])
def test_empty_list_allows_any_host(authd, hosts):
    inst = authd({"APP__ALLOWED_HOSTS": hosts})
    for h in ("evil.example.com", "whatever.test:81"):
        r = _host(inst, h)
        assert r.status_code == 200, h


def test_entries_are_trimmed(authd):
    inst = authd({"APP__ALLOWED_HOSTS": '["  auth.example.com  "]'})
    assert _host(inst, "auth.example.com").status_code == 200
    _assert_rejected(_host(inst, "evil.example.com"))


def test_wildcard_only_list(authd):
    inst = authd({"APP__ALLOWED_HOSTS": '["*.example.org"]'})
    assert _host(inst, "a.example.org").status_code == 200
    _assert_rejected(_host(inst, "example.org"))
    _assert_rejected(_host(inst, "a.example.org.evil"))
    # the readiness wait of the harness used Host: 127.0.0.1, which is refused here
    _assert_rejected(inst.get("/health/live"))
