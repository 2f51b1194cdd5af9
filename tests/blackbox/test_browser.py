"""A real browser: Debian's Chromium, headless, driven by Playwright, with no network
beyond loopback. The playground must render from the binary alone, fetch the
schema, and run a typed query; CORS must let an allowed origin read and keep any
other origin from reading or writing (HTTP and WebSocket alike)."""

import http.server
import json
import os
import shutil
import threading
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def loopback_only(page):
    """Fails the test for any request the page makes beyond this machine."""
    seen = []

    def check(request):
        host = urlsplit(request.url).hostname
        if request.url.startswith(("data:", "blob:", "about:")):
            return
        seen.append(request.url)
        assert host in ("127.0.0.1", "localhost"), f"request to another host: {request.url}"

    page.on("request", check)
    return seen


def test_playground_renders_fetches_the_schema_and_runs_a_query(start, browser):
    srv = start("sqlite")
    srv.ok('mutation { ensureBuilder(name: "from-the-browser") { builderid } }')
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    seen = loopback_only(page)
    page.goto(srv.base + "/graphql")
    page.wait_for_selector(".graphiql-container", timeout=30_000)
    # The docs show the schema's types: the schema was fetched.
    page.get_by_role("button", name="Show Documentation Explorer").click()
    page.get_by_text("Query", exact=True).first.click()
    page.wait_for_selector(".graphiql-doc-explorer-content :text('Buildset')", timeout=15_000)
    # Type a query and run it.
    type_query(page, "{ builders { name")
    run_query(page)
    wait_for_result(page, "from-the-browser")
    assert not errors, errors
    assert any("/graphql/assets/graphiql.min.js" in u for u in seen)


def test_playground_carries_a_bearer_token(start, browser):
    srv = start("sqlite", "--read-token", "R")
    page = browser.new_page()
    loopback_only(page)
    page.goto(srv.base + "/graphql")
    page.wait_for_selector(".graphiql-container", timeout=30_000)
    type_headers(page, '{"Authorization": "Bearer R"')
    type_query(page, "{ builders { builderid")
    run_query(page)
    wait_for_result(page, '"builders": []')


def test_playground_subscribes_with_its_token(start, browser):
    """A subscription typed in the playground runs over the WebSocket, with the Headers
    pane's token in connection_init, and shows a buildset added afterwards."""
    srv = start("sqlite", "--read-token", "R", "--write-token", "W")
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    loopback_only(page)
    page.goto(srv.base + "/graphql")
    page.wait_for_selector(".graphiql-container", timeout=30_000)
    type_headers(page, '{"Authorization": "Bearer R"')
    type_query(page, "subscription Live { buildsetAdded { bsid reason")
    run_query(page)
    page.wait_for_timeout(1500)
    builder = srv.ok('mutation { ensureBuilder(name: "b") { builderid } }', token="W")
    srv.ok("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }",
           {"in": {"reason": "seen in the browser", "sourcestamps": [{"stamp": {"branch": "m"}}],
                   "builderids": [builder["ensureBuilder"]["builderid"]]}}, token="W")
    wait_for_result(page, "seen in the browser")
    assert any(u.endswith("/graphql/ws") for u in sockets), sockets
    assert not errors, errors


def type_headers(page, text):
    """Opens the Headers pane and types `text` into it."""
    page.get_by_text("Headers", exact=True).first.click()
    page.locator(".graphiql-editor-tool .CodeMirror").last.click()
    page.keyboard.type(text)


def type_query(page, text):
    """Replaces the query editor's text with `text`, typed as a person would."""
    page.locator(".graphiql-query-editor .CodeMirror").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(text)


def run_query(page):
    page.keyboard.press("Escape")  # the autocomplete list, if open
    # GraphiQL re-reads the operation name from the editor after a short debounce; a
    # click within it would still send the default query's name.
    page.wait_for_timeout(800)
    page.locator(".graphiql-execute-button").click()


def wait_for_result(page, text):
    page.wait_for_function(
        "(t) => (document.querySelector('.result-window') || {}).innerText?.includes(t)",
        arg=text,
        timeout=15_000,
    )


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>other site</title><p>hello</p>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


FETCH = """async ([url, body, type]) => {
  try {
    const r = await fetch(url, {method: 'POST', headers: {'content-type': type}, body});
    return {status: r.status, text: await r.text()};
  } catch (e) { return {error: String(e)}; }
}"""

NO_CORS = """async ([url, body]) => {
  try {
    await fetch(url, {method: 'POST', mode: 'no-cors', headers: {'content-type': 'text/plain'}, body});
    return 'sent';
  } catch (e) { return String(e); }
}"""

SOCKET = """(url) => new Promise((resolve) => {
  const ws = new WebSocket(url, 'graphql-transport-ws');
  ws.onopen = () => ws.send(JSON.stringify({type: 'connection_init', payload: {}}));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'connection_ack') {
      ws.send(JSON.stringify({id: '1', type: 'subscribe',
        payload: {query: 'mutation { ensureBuilder(name: "via-socket") { name } }'}}));
    } else if (msg.type === 'next') { resolve('ran: ' + JSON.stringify(msg.payload)); ws.close(); }
  };
  ws.onclose = (e) => resolve('closed ' + e.code);
  setTimeout(() => resolve('timeout'), 8000);
})"""


def test_cors_lets_the_allowed_origin_read_and_no_other(start, browser):
    allowed_site, allowed = site()
    other_site, other = site()
    try:
        srv = start("sqlite", "--cors-origin", allowed)
        url = srv.base + "/graphql"
        ws_url = srv.base.replace("http", "ws") + "/graphql/ws"
        write = json.dumps({"query": 'mutation { ensureBuilder(name: "cross-site") { name } }'})
        read = json.dumps({"query": "{ builders { name } }"})

        page = browser.new_page()
        page.goto(allowed)
        r = page.evaluate(FETCH, [url, read, "application/json"])
        assert r.get("status") == 200 and json.loads(r["text"])["data"] == {"builders": []}, r
        assert page.evaluate(SOCKET, ws_url).startswith("ran: ")

        page = browser.new_page()
        page.goto(other)
        r = page.evaluate(FETCH, [url, read, "application/json"])
        assert "error" in r, r  # the preflight fails: nothing to read
        r = page.evaluate(FETCH, [url, write, "application/json"])
        assert "error" in r, r
        # A simple request needs no preflight and is sent; the server must not run it.
        assert page.evaluate(NO_CORS, [url, write]) == "sent"
        assert page.evaluate(SOCKET, ws_url).startswith("closed"), "a foreign origin's socket"

        names = {b["name"] for b in srv.ok("{ builders { name } }")["builders"]}
        assert names == {"via-socket"}, names
    finally:
        allowed_site.shutdown()
        other_site.shutdown()
