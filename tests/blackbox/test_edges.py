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
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and message in err["message"], err


def test_an_object_whose_fields_are_all_skipped_is_empty_not_null(start):
    srv = start("sqlite")
    srv.ok('mutation { ensureBuilder(name: "b") { builderid } }')
    assert raw(srv, "{ __typename @skip(if: true) }").text == '{"data":{}}'
    assert raw(srv, "query($s: Boolean!) { t: __typename @skip(if: $s) u: __typename @include(if: $s) }",
               {"s": True}).text == '{"data":{"u":"Query"}}'
    assert raw(srv, "{ builders { name @skip(if: true) } all: builders { name } }").text == \
        '{"data":{"builders":[{}],"all":[{"name":"b"}]}}'
    assert raw(srv, "{ ... @include(if: false) { builders { name } } }").text == '{"data":{}}'
    # A missing object is still null: the difference is what `{}` is for.
    assert raw(srv, "{ buildset(bsid: 99) { bsid @skip(if: true) } }").text == '{"data":{"buildset":null}}'


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
    assert r.status_code == 400 and json.loads(r.text)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # An unknown coding is refused, naming those that are decoded.
    r = post_coded(srv, plain, "zstd")
    assert r.status_code == 415, r.text
    err = json.loads(r.text)["errors"][0]
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "gzip, deflate, br" in err["message"], err
    assert r.headers["accept-encoding"] == "gzip, deflate, br"
    # A bomb: 200 MB of JSON in 200 kB of gzip stops at the body bound, decoded.
    before = rss_mib(srv.proc.pid)
    bomb = gzip.compress(b'{"query": "{ __typename }", "x": "' + b"a" * 200_000_000 + b'"}')
    r = post_coded(srv, bomb, "gzip")
    assert r.status_code == 413 and "--max-body-bytes" in json.loads(r.text)["errors"][0]["message"], r.text
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
