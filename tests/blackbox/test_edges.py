"""Edges a sweep from outside found: directives on `__typename` that were never
validated, an object whose every field is skipped answered as null, request bodies
whose Content-Encoding was ignored, and secrets that reached the log at trace and
debug levels."""

import asyncio
import gzip
import json
import zlib

import httpx
import pytest
import websockets

from test_memory import rss_mib


def raw(srv, query, variables=None, **kw):
    body = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return srv.http.post("/graphql", content=json.dumps(body), headers={"content-type": "application/json"}, **kw)


@pytest.mark.parametrize("query, message", [
    ("{ __typename @evil }", 'Unknown directive "evil"'),
    ("{ __typename @skip(if: true) @skip(if: false) }", 'Duplicate directive "skip"'),
    ("{ __typename @skip }", 'argument "if" of type "Boolean!" is required'),
    ("{ __typename @include(if: 3) }", 'Invalid value for argument "if"'),
    ("{ __typename @skip(if: $undefined) }", 'Variable "$undefined" is not defined'),
    ("{ __typename(x: 1) }", 'Unknown argument "x" on field "__typename"'),
    ("{ builders { __typename @evil } }", 'Unknown directive "evil"'),
])
def test_typename_directives_and_arguments_are_validated(start, query, message):
    srv = start("sqlite")
    body = json.loads(raw(srv, query).text)
    assert not body.get("data"), body
    [err] = body["errors"]
    assert err["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and message in err["message"], err


def test_an_object_whose_fields_are_all_skipped_is_empty_not_null(start):
    srv = start("sqlite")
    srv.ok('mutation { ensureBuilder(name: "b") { builderid } }')
    assert raw(srv, "{ __typename @skip(if: true) }").text.rstrip("\n") == '{"data":{}}'
    assert raw(srv, "query($s: Boolean!) { t: __typename @skip(if: $s) u: __typename @include(if: $s) }",
               {"s": True}).text.rstrip("\n") == '{"data":{"u":"Query"}}'
    assert raw(srv, "{ builders { name @skip(if: true) } all: builders { name } }").text.rstrip("\n") == \
        '{"data":{"builders":[{}],"all":[{"name":"b"}]}}'
    assert raw(srv, "{ ... @include(if: false) { builders { name } } }").text.rstrip("\n") == '{"data":{}}'
    # A missing object is still null: the difference is what `{}` is for.
    assert raw(srv, "{ buildset(bsid: 99) { bsid @skip(if: true) } }").text.rstrip("\n") == '{"data":{"buildset":null}}'


def post_coded(srv, body, coding):
    return srv.http.post("/graphql", content=body,
                         headers={"content-type": "application/json", "content-encoding": coding})


def test_request_bodies_are_decoded_as_labelled_and_bounded_once_decoded(start):
    srv = start("sqlite")
    plain = json.dumps({"query": "{ __typename }"}).encode()
    for coding, packed in [("gzip", gzip.compress(plain)), ("deflate", zlib.compress(plain)), ("GZIP", gzip.compress(plain))]:
        r = post_coded(srv, packed, coding)
        assert r.status_code == 200 and json.loads(r.text) == {"data": {"__typename": "Query"}}, (coding, r.text)
    # Plain JSON labelled gzip is not run as if it were plain.
    r = post_coded(srv, plain, "gzip")
    assert r.status_code == 400 and json.loads(r.text)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    # An unknown coding is refused, naming those that are decoded.
    r = post_coded(srv, plain, "zstd")
    assert r.status_code == 415, r.text
    err = json.loads(r.text)["errors"][0]
    assert err["extensions"]["code"] == "BAD_REQUEST" and "gzip, deflate, br" in err["message"], err
    assert r.headers["accept-encoding"] == "gzip, deflate, br"
    # A bomb: 200 MB of JSON in 200 kB of gzip stops at the body bound, decoded.
    before = rss_mib(srv.proc.pid)
    bomb = gzip.compress(b'{"query": "{ __typename }", "x": "' + b"a" * 200_000_000 + b'"}')
    r = post_coded(srv, bomb, "gzip")
    assert r.status_code == 413 and "--max-body-bytes" in json.loads(r.text)["errors"][0]["message"], r.text
    # The rest of the body was never read: the connection is closed, and says so, so
    # that the client sends its next request on a new one (CI once saw this client
    # reuse it and meet the close).
    assert r.headers.get("connection") == "close", r.headers
    assert rss_mib(srv.proc.pid) - before < 32
    assert srv.ok("{ __typename }") == {"__typename": "Query"}


def test_no_token_reaches_the_log_at_trace_or_debug(start):
    secret_ws, secret_url = "ws-secret-4f1c9e", "url-secret-77ab30"
    srv = start("sqlite", "--read-token", secret_ws, env={"RUST_LOG": "trace"})

    async def go():
        async with websockets.connect(srv.base.replace("http", "ws") + "/graphql/ws",
                                      subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {secret_ws}"}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }"}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "next"

    asyncio.run(go())
    # A client that wrongly puts a token in the URL.
    httpx.get(srv.base + "/graphql", params={"query": "{ __typename }", "token": secret_url},
              headers={"authorization": f"Bearer {secret_ws}"})
    log = srv.output()
    assert "connection_init" not in log or secret_ws not in log
    assert secret_ws not in log, "the bearer token reached the log"
    assert secret_url not in log, "a token in the URL reached the log"
    assert "/graphql" in log, "the trace log says nothing at all"


# Found by the second sweep from outside (after the fixes above).

def test_a_selection_that_goes_back_up_is_bounded_by_the_answer_it_repeats(start):
    """`buildrequests { buildset { buildrequests } }` repeats a buildset's requests
    in the answer once per request: with 1,000 requests, eight aliases made a 360 MB
    answer and a 4.4 GB process. Each object of a nested list counts against
    --max-response-bytes."""
    srv = start("sqlite", "--max-response-bytes", "2000000")
    ids = []
    for k in range(0, 200, 50):
        names = " ".join(f'b{i}: ensureBuilder(name: "fan{i}") {{ builderid }}' for i in range(k, k + 50))
        ids += [b["builderid"] for b in srv.ok("mutation { %s }" % names).values()]
    bsid = srv.ok("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }",
                  {"in": {"reason": "fan", "sourcestamps": [{"stamp": {"branch": "f"}}], "builderids": ids}})["addBuildset"]["bsid"]
    one = srv.ok("query($b: Int!) { buildset(bsid: $b) { buildrequests { builderid } } }", {"b": bsid})
    assert len(one["buildset"]["buildrequests"]) == 200
    body = srv.post("query($b: Int!) { buildset(bsid: $b) { buildrequests { buildset { buildrequests { bsid } } } } }",
                    {"b": bsid})
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes == {"QUERY_TOO_COMPLEX"}, body["errors"][:2]
    assert "--max-response-bytes" in body["errors"][0]["message"]
    assert srv.ok("{ __typename }") == {"__typename": "Query"}


def test_property_values_weigh_what_they_decode_to(start):
    """64 KB properties of 16,000 empty objects: a 23 MB answer took 1.2 GB."""
    srv = start("sqlite", "--max-response-bytes", "4000000")
    dense = [[{}] * 1000] * 16
    bid = srv.ok('mutation { ensureBuilder(name: "amp") { builderid } }')["ensureBuilder"]["builderid"]
    for reason, n in [("amp", 5), ("one", 1)]:
        srv.ok("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }", {"in": {
            "reason": reason, "sourcestamps": [{"stamp": {"branch": "a"}}], "builderids": [bid],
            "properties": [{"name": f"p{i}", "value": dense, "source": "s"} for i in range(n)]}})
    # Five such values decode to about 5 MB: over the bound, though their text is 240 kB.
    body = srv.post('{ buildsets(where: {reason: {eq: "amp"}}) { nodes { properties { value } } } }')
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    # One fits, and reads back as given.
    d = srv.ok('{ buildsets(where: {reason: {eq: "one"}}) { nodes { properties { value } } } }')
    assert d["buildsets"]["nodes"][0]["properties"] == [{"value": dense}]


def ws_messages(srv, messages):
    """Sends graphql-transport-ws messages after connection_init; returns the close
    code and reason (or None if the socket stayed open for 3 s)."""
    async def go():
        async with websockets.connect(srv.base.replace("http", "ws") + "/graphql/ws",
                                      subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            await asyncio.wait_for(ws.recv(), 10)
            for m in messages:
                await ws.send(json.dumps(m))
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 3)
            except asyncio.TimeoutError:
                return None
            except websockets.exceptions.ConnectionClosed:
                return ws.close_code, ws.close_reason
    return asyncio.run(go())


def test_operation_ids_and_message_types_are_bounded(start):
    """A 1 MB id on each of 1,000 subscriptions held 1.9 GB; `start` (the legacy
    protocol's message) was silently ignored."""
    srv = start("sqlite")
    sub = {"query": "subscription { buildsetAdded { bsid } }"}
    code, reason = ws_messages(srv, [{"id": "x" * 200, "type": "subscribe", "payload": sub}])
    assert code == 4400 and "at most 128 bytes" in reason, (code, reason)
    code, reason = ws_messages(srv, [{"id": "1", "type": "start", "payload": sub}])
    assert code == 4400 and "start" in reason, (code, reason)
    assert ws_messages(srv, [{"id": "x" * 128, "type": "subscribe", "payload": sub}]) is None


def test_subscription_conditions_weigh_against_the_subscription_bound(start):
    """1,000 subscriptions of 99 sourcestamp conditions made one write cost 158 s of
    CPU: each condition runs again for every event."""
    srv = start("sqlite", "--max-subscription-bytes", "1000000")
    wide = "subscription { buildsetAdded(where: {or: [%s]}) { bsid } }" % ", ".join(
        f'{{branch: {{contains: "b{i}"}}}}' for i in range(20))

    async def go():
        async with websockets.connect(srv.base.replace("http", "ws") + "/graphql/ws",
                                      subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            await asyncio.wait_for(ws.recv(), 10)
            await ws.send(json.dumps({"id": "w", "type": "subscribe", "payload": {"query": wide}}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))
    msg = asyncio.run(go())
    errors = msg["payload"] if msg["type"] == "error" else msg["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "UNAVAILABLE" and "--max-subscription-bytes" in errors[0]["message"], msg


def test_host_headers_that_disagree_are_refused(start):
    srv = start("sqlite")
    q = json.dumps({"query": 'mutation { ensureBuilder(name: "h") { builderid } }'}).encode()

    def raw_request(head):
        import socket
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(head + f"Content-Type: application/json\r\nContent-Length: {len(q)}\r\nConnection: close\r\n\r\n".encode() + q)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.split(b"\r\n", 1)[0]

    assert b" 400 " in raw_request(b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n")
    assert b" 403 " in raw_request(b"POST http://evil.example/graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert b" 200 " in raw_request(f"POST http://127.0.0.1:{srv.port}/graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
    assert srv.ok("{ builders { name } }")["builders"] == [{"name": "h"}]


def test_a_body_declared_too_large_is_refused_at_once(start):
    import socket
    import time
    srv = start("sqlite")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        began = time.monotonic()
        s.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 2000000\r\n\r\n")
        head = s.recv(65536)
        assert b" 413 " in head.split(b"\r\n", 1)[0], head[:200]
        assert time.monotonic() - began < 3
        assert b"--max-body-bytes" in head or b"--max-body-bytes" in s.recv(65536)
