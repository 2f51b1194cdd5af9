"""DNS rebinding: a page on `evil.example` whose name now points at 127.0.0.1 talks
to the server with the browser's same-origin blessing, but its requests still say
`Host: evil.example`. Such requests are refused (403, GraphQL JSON) before any
operation runs, over POST, GET and the WebSocket alike; IP literals, `localhost`
names and --allowed-host names are served."""

import asyncio
import json
import os
import shutil
import socket

import httpx
import pytest
import websockets

from test_browser import CHROMIUM, FLAGS

MUTATION = 'mutation { ensureBuilder(name: "rebound") { builderid } }'


def post(srv, host, origin=None, query=MUTATION):
    headers = {"content-type": "application/json", "host": host}
    if origin:
        headers["origin"] = origin
    return httpx.post(srv.base + "/graphql", content=json.dumps({"query": query}), headers=headers)


def builders(srv):
    return srv.ok("{ builders { name } }")["builders"]


def test_a_foreign_host_is_refused_before_anything_runs(start):
    srv = start("sqlite")
    evil = f"evil.example:{srv.port}"
    r = post(srv, evil, origin=f"http://{evil}")
    assert r.status_code == 403, r.text
    body = json.loads(r.text)
    err = body["errors"][0]
    assert err["extensions"]["code"] == "FORBIDDEN"
    assert "--allowed-host evil.example" in err["message"]
    r = httpx.get(srv.base + "/graphql", params={"query": "{ __typename }"}, headers={"host": evil})
    assert r.status_code == 403 and json.loads(r.text)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The playground page itself is not served to that name either.
    assert httpx.get(srv.base + "/graphql", headers={"host": evil, "accept": "text/html"}).status_code == 403
    assert builders(srv) == [], "the refused mutation ran"
    assert "refused a request for a host" in srv.output()


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost.:{port}",
                                  "ui.localhost:{port}", "[::1]:{port}", "10.0.0.7"])
def test_ip_literals_and_localhost_names_are_served(start, host):
    srv = start("sqlite")
    r = post(srv, host.format(port=srv.port), query="{ __typename }")
    assert r.status_code == 200 and json.loads(r.text) == {"data": {"__typename": "Query"}}, r.text


def test_allowed_hosts_are_served(start):
    srv = start("sqlite", "--allowed-host", "api.example.org,.corp.example")
    for host in ["api.example.org", "API.EXAMPLE.ORG:8443", "corp.example", "ci.corp.example"]:
        assert post(srv, host).status_code == 200, host
    for host in ["example.org", "evil.example", "notcorp.example"]:
        assert post(srv, host).status_code == 403, host
    anything = start("sqlite", env={"ALLOWED_HOSTS": "*"})
    assert post(anything, "evil.example").status_code == 200


def upgrade(srv, host, origin):
    """The status line and body of a raw WebSocket upgrade naming `host` (a client
    library sets Host itself)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall((f"GET /graphql/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n"
                   f"Origin: {origin}\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode(), rest


def test_a_websocket_for_a_foreign_host_is_refused(start):
    srv = start("sqlite")
    evil = f"evil.example:{srv.port}"
    status, body = upgrade(srv, evil, f"http://{evil}")
    assert " 403 " in status, status
    own = f"127.0.0.1:{srv.port}"
    status, _ = upgrade(srv, own, f"http://{own}")
    assert " 101 " in status, status

    async def main():
        ws = await websockets.connect(srv.base.replace("http", "ws") + "/graphql/ws",
                                      subprotocols=["graphql-transport-ws"],
                                      additional_headers={"Origin": srv.base}, open_timeout=10)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.close()

    asyncio.run(main())


@pytest.fixture
def rebinding_browser():
    """Chromium in which `evil.example` resolves to 127.0.0.1: the state of a
    developer's browser after an attacker's page rebound its name."""
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=[*FLAGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])
        yield b
        b.close()


def test_a_rebound_page_in_a_real_browser_cannot_write(start, rebinding_browser):
    srv = start("sqlite")
    page = rebinding_browser.new_page()
    answer = page.goto(f"http://evil.example:{srv.port}/graphql")
    assert answer.status == 403
    # The attacker's script, same-origin with the rebound name: a JSON POST (its
    # preflight passes, it is same-origin) and a WebSocket.
    result = page.evaluate("""async (q) => {
        const r = await fetch('/graphql', {method: 'POST', headers: {'content-type': 'application/json'},
                                           body: JSON.stringify({query: q})});
        const ws = await new Promise((resolve) => {
            const s = new WebSocket('ws://' + location.host + '/graphql/ws', 'graphql-transport-ws');
            s.onopen = () => { s.send(JSON.stringify({type: 'connection_init'})); resolve('open'); };
            s.onerror = () => resolve('refused');
        });
        return {status: r.status, body: await r.text(), ws};
    }""", MUTATION)
    assert result["status"] == 403, result
    assert json.loads(result["body"])["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert result["ws"] == "refused", result
    assert builders(srv) == [], "the rebound page wrote"
    # The same browser on the loopback name is served as before.
    page.goto(srv.base + "/graphql")
    ok = page.evaluate("""async () => (await fetch('/graphql', {method: 'POST',
        headers: {'content-type': 'application/json'}, body: JSON.stringify({query: '{ __typename }'})})).status""")
    assert ok == 200
