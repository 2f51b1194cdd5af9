"""The WebSocket (graphql-transport-ws) goes through the same door as HTTP."""

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

PROTOCOL = "graphql-transport-ws"


async def connect(srv, origin=None, **kw):
    headers = {"Origin": origin} if origin else None
    return await websockets.connect(
        srv.base.replace("http", "ws") + "/graphql/ws",
        subprotocols=[PROTOCOL],
        additional_headers=headers,
        open_timeout=10,
        **kw,
    )


async def init(ws, payload=None):
    await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def run(ws, query, variables=None, op_id="1"):
    """The messages for one operation: its `next`/`error` payloads, until `complete`."""
    await ws.send(json.dumps({"id": op_id, "type": "subscribe",
                              "payload": {"query": query, "variables": variables or {}}}))
    out = []
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg.get("id") != op_id:
            continue
        if msg["type"] == "complete":
            return out
        out.append(msg)
        if msg["type"] == "error":
            return out


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_socket_obeys_the_read_and_write_tokens(start, backend):
    srv = start(backend, "--read-token", "R", "--write-token", "W")

    async def go():
        # No token: closed before any operation runs.
        ws = await connect(srv)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4401, ws.close_reason
        ws = await connect(srv)
        await ws.send(json.dumps({"type": "connection_init", "payload": bearer("nope")}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4403, ws.close_reason
        # Read token: queries run, mutations are FORBIDDEN.
        ws = await connect(srv)
        assert (await init(ws, bearer("R")))["type"] == "connection_ack"
        [msg] = await run(ws, "{ builders { name } }")
        assert msg["type"] == "next" and msg["payload"]["data"] == {"builders": []}
        [msg] = await run(ws, 'mutation { ensureBuilder(name: "ws") { name } }', op_id="2")
        assert msg["type"] == "error" and msg["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        await ws.close()
        # Write token: mutations run; errors carry codes.
        ws = await connect(srv)
        assert (await init(ws, bearer("W")))["type"] == "connection_ack"
        [msg] = await run(ws, 'mutation { ensureBuilder(name: "ws") { name } }')
        assert msg["payload"]["data"] == {"ensureBuilder": {"name": "ws"}}
        # A request error is `error` (graphql-transport-ws), a field error `next`.
        [msg] = await run(ws, "{ nope }", op_id="2")
        assert msg["type"] == "error" and msg["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        [msg] = await run(ws, "mutation { completeBuildset(bsid: 999, results: 0) { bsid } }", op_id="3")
        assert msg["type"] == "next" and msg["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        # Responses in query order over the socket too.
        for i in range(10):
            [msg] = await run(ws, "{ z: builders { name } a: builders { builderid } }", op_id=f"o{i}")
            assert list(msg["payload"]["data"]) == ["z", "a"]
        await ws.close()

    asyncio.run(go())
    # The same tokens over HTTP, for comparison: one door.
    assert srv.err("{ builders { name } }")[0] == "UNAUTHENTICATED"
    assert srv.err('mutation { ensureBuilder(name: "h") { name } }', token="R")[0] == "FORBIDDEN"


def test_socket_protocol_errors_close_with_protocol_codes(start):
    srv = start("sqlite", "--read-token", "R")

    async def go():
        ws = await connect(srv)
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ builders { name } }"}}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4401, "an operation before connection_init"
        ws = await connect(srv)
        await ws.send("not json")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4400, ws.close_reason

    asyncio.run(go())


def test_socket_refuses_foreign_origins(start):
    srv = start("sqlite", "--cors-origin", "http://ui.example:3000")

    async def go():
        with pytest.raises(InvalidStatus) as refused:
            await connect(srv, origin="https://evil.example")
        assert refused.value.response.status_code == 403
        for origin in [None, "http://ui.example:3000", srv.base]:
            ws = await connect(srv, origin=origin)
            assert (await init(ws))["type"] == "connection_ack"
            [msg] = await run(ws, 'mutation { ensureBuilder(name: "ok") { name } }')
            assert msg["payload"]["data"]["ensureBuilder"]["name"] == "ok"
            await ws.close()

    asyncio.run(go())
    assert srv.ok("{ builders { name } }")["builders"] == [{"name": "ok"}]


def test_socket_messages_are_bounded_and_exact(start):
    srv = start("sqlite", "--max-body-bytes", "4096")

    async def go():
        ws = await connect(srv)
        assert (await init(ws))["type"] == "connection_ack"
        builder = (await run(ws, 'mutation { ensureBuilder(name: "n") { builderid } }'))[0]
        bid = builder["payload"]["data"]["ensureBuilder"]["builderid"]
        q = """mutation($in: AddBuildsetInput!) { addBuildset(input: $in) {
                 buildset { properties { name value } } } }"""
        inp = {"reason": "ws", "sourcestamps": [{"stamp": {"branch": "b"}}], "builderids": [bid],
               "properties": [{"name": "n", "value": 3, "source": "s"}, {"name": "f", "value": 1.0, "source": "s"}]}
        [msg] = await run(ws, q, {"in": inp})
        props = msg["payload"]["data"]["addBuildset"]["buildset"]["properties"]
        assert json.dumps(props) == '[{"name": "f", "value": 1.0}, {"name": "n", "value": 3}]'
        inp["properties"][0]["value"] = 123456789012345678901234567890
        [msg] = await run(ws, q, {"in": inp}, op_id="2")
        assert msg["type"] == "error", msg
        err = msg["payload"][0]
        assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "in.properties.0.value"}
        # A message beyond the body limit closes the socket rather than being read.
        await ws.send(json.dumps({"id": "3", "type": "subscribe", "payload": {"query": "{ builders { name } }" + " " * 8000}}))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1009

    asyncio.run(go())
