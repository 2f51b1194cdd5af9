"""The log: one line per failed request, JSON on request, no colour codes in a file,
and never a token or a property value."""

import json

import pytest

from conftest import ADD


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines(start, fmt):
    srv = start("sqlite", "--log-format", fmt, "--write-token", "TOKEN-XYZ")
    inp = {"reason": "r", "sourcestamps": [{"stamp": {"branch": "b"}}], "builderids": [999],
           "properties": [{"name": "p", "value": "SECRET-VALUE", "source": "s"}]}
    code, _, _ = srv.err(ADD, {"in": inp}, token="TOKEN-XYZ")
    assert code == "BAD_USER_INPUT"
    log = srv.output()
    assert "\x1b[" not in log, "colour codes in a file"
    assert "TOKEN-XYZ" not in log and "SECRET-VALUE" not in log
    # SQLite was configured (memory statistics off) before it started; the server
    # says so when that call comes too late.
    assert "memory statistics" not in log, log
    lines = [l for l in log.splitlines() if "BAD_USER_INPUT" in l]
    assert len(lines) == 1, log
    if fmt == "json":
        entry = json.loads(lines[0])
        # What log shippers read, at the top of each object.
        assert entry["message"] == "request" and entry["code"] == "BAD_USER_INPUT", entry
        assert entry["level"] == "INFO" and entry["timestamp"].endswith("Z"), entry
        assert entry["request_id"] and entry["duration_ms"] >= 0 and entry["transport"] == "post", entry
        assert entry["status"] and entry["operation"] == "-", entry
        # Every line is JSON, the start-up banner too.
        every = [json.loads(l) for l in log.splitlines() if l.strip()]
        assert any(e["message"].startswith("listening: the playground is at http://127.0.0.1:")
                   for e in every), log
    else:
        assert 'transport="post"' in lines[0], lines[0]


def test_refusals_are_logged_and_counted_whatever_refused_them(start):
    """Read-token refusals (HTTP and the WebSocket's connection_init), media types and
    bodies: each one line and one count, with the transport spelled as in metrics."""
    import asyncio
    import websockets

    srv = start("sqlite", "--log-format", "json", "--read-token", "R")
    assert srv.http.post("/graphql", json={"query": "{ __typename }"}).status_code == 401
    assert srv.http.get("/graphql", params={"query": "{ __typename }"},
                        headers={"authorization": "Bearer nope"}).status_code == 403
    assert srv.http.post("/graphql", content="{}", headers={"authorization": "Bearer R",
                                                           "content-type": "text/plain"}).status_code == 415
    # Refused by the layers in front of the routes: a body's coding, its size, the Host.
    json_body = {"authorization": "Bearer R", "content-type": "application/json"}
    assert srv.http.post("/graphql", content="{}", headers={**json_body, "content-encoding": "zstd"}).status_code == 415
    assert srv.http.post("/graphql", content="x" * (2 << 20), headers=json_body).status_code == 413
    r = srv.http.post("/graphql", content=b"\x1f\x8b\x08\x00", headers={**json_body, "content-encoding": "gzip"})
    assert r.status_code == 400 and "could not be read: " in r.text, r.text
    assert srv.http.get("/graphql", params={"query": "{ __typename }"},
                        headers={"host": "evil.example", "authorization": "Bearer R"}).status_code == 403

    async def ws_refused():
        ws = await websockets.connect(srv.base.replace("http", "ws") + "/graphql/ws",
                                      subprotocols=["graphql-transport-ws"])
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code

    assert asyncio.run(ws_refused()) == 4401
    import time
    deadline = time.time() + 5
    while True:
        entries = [json.loads(l) for l in srv.output().splitlines() if l.strip()]
        seen = [(e.get("transport"), e.get("code")) for e in entries if e.get("message") == "request"]
        if len(seen) >= 8 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert seen == [("post", "UNAUTHENTICATED"), ("get", "FORBIDDEN"), ("post", "BAD_REQUEST"),
                    ("post", "BAD_REQUEST"), ("post", "BAD_REQUEST"), ("post", "BAD_REQUEST"),
                    ("get", "FORBIDDEN"), ("websocket", "UNAUTHENTICATED")], seen
    # Each line names its request as its answer's x-request-id does.
    ids = [e["request_id"] for e in entries if e.get("message") == "request"]
    assert len(set(ids)) == len(ids), ids
    r = srv.http.get("/metrics", headers={"authorization": "Bearer R"})
    expected = {}
    for transport, code in seen:
        expected[(transport, code)] = expected.get((transport, code), 0) + 1
    for (transport, code), n in expected.items():
        line = f'bsgql_requests_total{{operation="-",transport="{transport}",outcome="{code}"}} {n}'
        assert line in r.text, (line, r.text)
