"""JSON-lines logging: config-ops §7.1-§7.3 (request_completed, redaction, levels)."""

import json
import re
import signal

import pytest

from harness import new_cid

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")
LEVELS = {"debug", "info", "warning", "error", "critical"}
REDACTED = "***REDACTED***"
REQUEST_FIELDS = {"method", "path", "route", "query_params", "status_code", "duration_ms",
                  "client_ip", "user_agent", "correlation_id"}


def _traffic(inst):
    inst.get("/health/live")
    inst.get("/health/ready?x=1")
    inst.get("/nope")
    inst.post("/health/live")
    inst.post("/_test/echo", content=b"[]")
    inst.post("/_test/echo", json={"a": 1})
    inst.get("/metrics")


def test_every_stdout_line_is_one_json_object(server):
    _traffic(server)
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    raw = server.stdout_raw()
    assert raw, "authd wrote nothing on stdout"
    for line in raw:
        assert line.endswith(b"\n"), line
        text = line.decode("utf-8")          # strict: must be UTF-8
        obj = json.loads(text)
        assert isinstance(obj, dict), text


def test_common_fields_on_every_line(authd):
    inst = authd({"APP__SERVICE": "authd-under-test"})
    _traffic(inst)
    assert inst.stop(signal.SIGTERM, timeout=15) == 0
    logs = inst.logs()
    assert logs
    for rec in logs:
        assert isinstance(rec.get("event"), str) and re.match(r"^[a-z][a-z0-9_]*$", rec["event"]), rec
        assert rec.get("level") in LEVELS, rec
        assert TS_RE.match(rec.get("timestamp", "")), rec
        assert isinstance(rec.get("correlation_id"), str) and rec["correlation_id"], rec
        assert rec.get("environment") == "development", rec
        assert rec.get("service") == "authd-under-test", rec


def test_lines_outside_requests_use_unknown_correlation_id(authd):
    inst = authd()
    assert inst.stop(signal.SIGTERM, timeout=15) == 0
    logs = inst.logs()
    non_request = [r for r in logs if r.get("event") != "request_completed"]
    assert non_request, "no start-up/shutdown log lines at all"
    for rec in non_request:
        assert rec.get("correlation_id") == "unknown", rec


def test_request_completed_fields(server):
    cid = new_cid("log")
    r = server.get("/health/live?a=1&b=two", headers={"X-Correlation-ID": cid,
                                                       "User-Agent": "authd-tests/1.0"})
    assert r.status_code == 200
    rec = server.request_log(cid)
    missing = REQUEST_FIELDS - set(rec)
    assert not missing, f"missing fields {missing} in {rec}"
    assert rec["level"] == "info"
    assert rec["method"] == "GET"
    assert rec["path"] == "/health/live"
    assert rec["route"] == "/health/live"
    assert rec["status_code"] == 200 and isinstance(rec["status_code"], int)
    assert isinstance(rec["duration_ms"], (int, float)) and not isinstance(rec["duration_ms"], bool)
    assert 0 <= rec["duration_ms"] < 10_000
    assert rec["client_ip"] == "127.0.0.1"
    assert rec["user_agent"] == "authd-tests/1.0"
    qp = rec["query_params"]
    assert isinstance(qp, dict)
    assert qp.get("a") in ("1", ["1"]) and qp.get("b") in ("two", ["two"]), qp


def test_one_line_per_request(server):
    cids = [new_cid("once") for _ in range(5)]
    for i, cid in enumerate(cids):
        server.request(("GET", "POST")[i % 2], "/health/live", headers={"X-Correlation-ID": cid})
    for cid in cids:
        server.request_log(cid)
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    for cid in cids:
        n = sum(1 for r in server.logs() if r.get("event") == "request_completed"
                and r.get("correlation_id") == cid)
        assert n == 1, (cid, n)


def test_error_requests_log_at_warning(server):
    for method, path, body, status in [("GET", "/nope", None, 404),
                                       ("POST", "/health/live", None, 405),
                                       ("POST", "/_test/echo", b"[]", 422)]:
        cid = new_cid("warn")
        r = server.request(method, path, content=body, headers={"X-Correlation-ID": cid})
        assert r.status_code == status
        rec = server.request_log(cid)
        assert rec["level"] == "warning", rec
        assert rec["status_code"] == status
        assert rec["method"] == method
        assert rec["path"] == path


def test_empty_query_and_missing_user_agent(server):
    cid = new_cid("bare")
    resp = server.raw(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Correlation-ID: "
                      + cid.encode() + b"\r\nConnection: close\r\n\r\n")
    assert resp is not None and resp.status == 200
    rec = server.request_log(cid)
    assert rec["user_agent"] == ""
    assert rec["query_params"] == {}


def test_duration_covers_parked_requests(server):
    cid = new_cid("dur")
    r = server.get("/_test/sleep?ms=300", headers={"X-Correlation-ID": cid})
    assert r.status_code == 200
    rec = server.request_log(cid)
    assert rec["route"] == "/_test/sleep"
    assert 290 <= rec["duration_ms"] < 30_000
    assert round(rec["duration_ms"], 2) == rec["duration_ms"]


def test_correlation_id_of_log_matches_generated_response_header(server):
    ua = "ua-" + new_cid()
    r = server.get("/health/live", headers={"User-Agent": ua})
    cid = r.headers["x-correlation-id"]
    rec = server.request_log(cid)
    assert rec["user_agent"] == ua


def test_log_level_filters_lines(authd):
    inst = authd({"APP__LOG_LEVEL": "WARNING"})
    ok, bad = new_cid("ok"), new_cid("bad")
    assert inst.get("/health/live", headers={"X-Correlation-ID": ok}).status_code == 200
    assert inst.get("/nope", headers={"X-Correlation-ID": bad}).status_code == 404
    inst.request_log(bad)
    assert inst.stop(signal.SIGTERM, timeout=15) == 0
    assert not [r for r in inst.logs() if r.get("correlation_id") == ok]
    assert all(r.get("level") != "info" and r.get("level") != "debug" for r in inst.logs())


def test_query_secrets_redacted(server):
    cid = new_cid("redact")
    query = ("token=SECRET123&password=hunter2&Access-Token=AT-SECRET-1&my_api_key=AK-SECRET-2"
             "&X-API-Key=XK-SECRET-3&refresh_token=RT-SECRET-4&new_password=NP-SECRET-5"
             "&cookie=CK-SECRET-6&authorization=AZ-SECRET-7&id_token_hint=IT-SECRET-8"
             "&next=%2Fhome&page=2")
    r = server.get("/health/live?" + query, headers={"X-Correlation-ID": cid})
    assert r.status_code == 200
    rec = server.request_log(cid)
    qp = rec["query_params"]

    def val(key):
        for k, v in qp.items():
            if k.lower().replace("-", "_") == key:
                return v[0] if isinstance(v, list) and len(v) == 1 else v
        raise AssertionError(f"{key} missing from {qp}")

    for key in ("token", "password", "access_token", "my_api_key", "x_api_key",
                "refresh_token", "new_password", "cookie", "authorization", "id_token_hint"):
        assert val(key) == REDACTED, (key, qp)
    assert val("next") == "/home"
    assert val("page") == "2"


def test_query_secrets_never_reach_output(server):
    secrets = ["SECRET123", "hunter2", "AT-SECRET-1", "RT-SECRET-4", "BEARER-SECRET-9",
               "COOKIE-SECRET-10", "BODY-SECRET-11"]
    server.get("/health/live?token=SECRET123&password=hunter2")
    server.get("/nope?access_token=AT-SECRET-1&refresh_token=RT-SECRET-4")
    server.get("/health/live", headers={"Authorization": "Bearer BEARER-SECRET-9",
                                        "Cookie": "__Host-auth_refresh=COOKIE-SECRET-10"})
    server.post("/_test/echo", json={"password": "BODY-SECRET-11"})
    server.post("/_test/echo", content=b'{"password": "BODY-SECRET-11"')       # 422 path
    server.get("/health/live?token=SECRET123", headers={"Host": "bad host with spaces"})
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    out = server.all_output()
    for s in secrets:
        assert s not in out, f"{s} leaked into authd output"


def test_repeated_and_odd_query_keys_are_redacted(server):
    cid = new_cid("odd")
    r = server.get("/health/live?token=T-ONE&token=T-TWO&PASSWORD=P-UP&Password_Confirm=P-CONF"
                   "&x=%ZZ&&=novalue&flag", headers={"X-Correlation-ID": cid})
    assert r.status_code == 200
    rec = server.request_log(cid)
    text = json.dumps(rec)
    for s in ("T-ONE", "T-TWO", "P-UP", "P-CONF"):
        assert s not in text, (s, rec["query_params"])
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    out = server.all_output()
    for s in ("T-ONE", "T-TWO", "P-UP", "P-CONF"):
        assert s not in out


def test_hostile_request_fields_keep_valid_json_lines(server):
    cid1, cid2, cid3 = new_cid("h1"), new_cid("h2"), new_cid("h3")
    ua = 'quote" backslash\\ tab\t brace} ' + "u" * 5000
    r = server.get("/health/live", headers={"User-Agent": ua, "X-Correlation-ID": cid1})
    assert r.status_code == 200
    rec = server.request_log(cid1)
    assert isinstance(rec["user_agent"], str)
    assert rec["user_agent"] == ua[:len(rec["user_agent"])]        # truncated at most
    assert rec["user_agent"].startswith('quote" backslash\\ tab\t brace}')

    resp = server.raw(b"GET /nope\xff\xfe%00%ff?k=\xc3\x28&u=%E2%82 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"User-Agent: bin\xff\x80ary\r\nX-Correlation-ID: " + cid2.encode()
                      + b"\r\nConnection: close\r\n\r\n")
    if resp is not None and resp.status != 400:
        assert resp.status == 404
        server.request_log(cid2)

    server.get("/health/live?" + "q=" + "z" * 6000, headers={"X-Correlation-ID": cid3})
    server.request_log(cid3)
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    for line in server.stdout_raw():
        obj = json.loads(line.decode("utf-8"))
        assert isinstance(obj, dict)
