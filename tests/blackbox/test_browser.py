"""A real browser: Debian's Chromium, headless, driven by Playwright, with no network
beyond loopback. The playground must render from the binary alone, fetch the
schema, and run a typed query; its Token bar serves every tab and the schema, is
kept across reloads, and says when the server wants a token; subscriptions list
their events with arrival times; the explorer lists the schema; it fits 400 px.
CORS must let an allowed origin read and keep any other origin from reading or
writing (HTTP and WebSocket alike)."""

import http.server
import json
import os
import shutil
import threading
from datetime import datetime
from urllib.parse import urlsplit

import httpx
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


def offline(page):
    """Aborts every request the page makes beyond this machine; returns the list of
    those, which a test asserts is empty."""
    foreign = []

    def route(r):
        url = r.request.url
        if url.startswith(("data:", "blob:", "about:")) or \
                urlsplit(url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            foreign.append(url)
            r.abort()

    page.route("**/*", route)
    return foreign


def open_playground(browser, srv, width=1280, height=800):
    """A new page on the playground, checked to stay on loopback and to raise no
    script error: (page, foreign requests, script errors)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    foreign = offline(page)
    page.goto(srv.base + "/graphql")
    page.wait_for_selector(".graphiql-container", timeout=30_000)
    return page, foreign, errors


def set_token(page, token):
    """Types `token` into the Token bar and presses Enter."""
    field = page.locator("#bsgql-token")
    field.fill("")
    field.type(token)
    field.press("Enter")


def result_text(page):
    """The whole text of the result pane (CodeMirror draws only what is in view)."""
    return page.evaluate(
        "() => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()")


def docs_show_the_schema(page):
    page.get_by_role("button", name="Show Documentation Explorer").click()
    page.get_by_text("Query", exact=True).first.click()
    page.wait_for_selector(".graphiql-doc-explorer-content :text('Buildset')", timeout=15_000)


def test_playground_title_and_favicon(start, browser):
    srv = start("sqlite")
    page, foreign, errors = open_playground(browser, srv)
    assert page.title() == "buildsets-graphql"
    icon = page.locator("link[rel=icon]").get_attribute("href")
    for path in ("/favicon.ico", icon):
        r = httpx.get(srv.base + path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers["content-type"].startswith("image/"), r.headers
        assert b"<svg" in r.content
    # The browser's own fetch of the icon works too (no 404 in the page).
    shown = page.evaluate("async (u) => (await fetch(u)).status", icon)
    assert shown == 200
    assert not foreign and not errors, (foreign, errors)


def test_playground_token_bar_serves_every_tab_and_the_schema(start, browser):
    """On a --read-token server: the first open says a token is needed (not only
    "Error fetching schema"), and so does a subscription's 4401 (not a stack trace);
    the token typed once loads the schema and opens every tab, queries and
    subscriptions alike (no 4401)."""
    srv = start("sqlite", "--read-token", "R")
    page, foreign, errors = open_playground(browser, srv)
    banner = page.get_by_role("alert")
    banner.wait_for(timeout=15_000)
    assert "needs a token" in banner.inner_text()
    # A subscription without the token ends with a line that says so, no stack trace.
    page.locator(".graphiql-tab", has_text="Live").click()
    page.wait_for_timeout(800)
    page.locator(".graphiql-execute-button").click()
    page.wait_for_function(
        "() => document.querySelector('.result-window .CodeMirror')"
        ".CodeMirror.getValue().includes('4401')", timeout=15_000)
    shown = json.loads(result_text(page))
    assert shown["received"] == 0 and len(shown["events"]) == 1, shown
    assert "Token field" in shown["events"][0]["error"], shown
    assert "stack" not in result_text(page)
    set_token(page, "R")
    banner.wait_for(state="detached", timeout=15_000)
    docs_show_the_schema(page)
    # A second tab has no headers of its own: the shared token serves it.
    page.get_by_role("button", name="Add tab").click()
    type_query(page, "{ builders { builderid")
    run_query(page)
    wait_for_result(page, '"builders": []')
    # And a subscription in a third tab opens its socket with it.
    page.get_by_role("button", name="Add tab").click()
    type_query(page, "subscription S { buildsetAdded { bsid")
    run_query(page)
    page.wait_for_timeout(1500)
    assert "4401" not in result_text(page)
    assert page.locator(".graphiql-execute-button[aria-label*='Stop']").count() == 1
    page.locator(".graphiql-execute-button").click()
    assert not foreign and not errors, (foreign, errors)


def test_playground_refetch_right_after_typing_carries_the_token(start, browser):
    """The schema fetched at once after the token is typed (before any debounce)
    carries it."""
    srv = start("sqlite", "--read-token", "R")
    page, foreign, errors = open_playground(browser, srv)
    page.get_by_role("alert").wait_for(timeout=15_000)
    page.locator("#bsgql-token").type("R")
    with page.expect_request(lambda r: "IntrospectionQuery" in (r.post_data or "")) as sent:
        page.get_by_role("button", name="Re-fetch GraphQL schema").click()
    assert sent.value.headers.get("authorization") == "Bearer R", sent.value.headers
    page.get_by_role("alert").wait_for(state="detached", timeout=15_000)
    assert not foreign and not errors, (foreign, errors)


def test_playground_keeps_the_token_in_the_browser(start, browser):
    srv = start("sqlite", "--read-token", "R")
    page, foreign, errors = open_playground(browser, srv)
    set_token(page, "wrong")
    page.get_by_role("alert").filter(has_text="does not take this token").wait_for(timeout=15_000)
    set_token(page, "R")
    page.get_by_role("alert").wait_for(state="detached", timeout=15_000)
    page.reload()
    page.wait_for_selector(".graphiql-container", timeout=30_000)
    assert page.locator("#bsgql-token").input_value() == "R"
    note = page.locator(".bsgql-note")
    assert note.is_visible() and "Stored in this browser" in note.inner_text()
    docs_show_the_schema(page)
    assert page.get_by_role("alert").count() == 0
    # Forget removes it: the message comes back.
    page.get_by_role("button", name="Forget").click()
    page.get_by_role("alert").wait_for(timeout=15_000)
    assert page.evaluate("() => localStorage.getItem('buildsets-graphql:token')") is None
    assert not foreign and not errors, (foreign, errors)


def test_playground_lists_subscription_events_with_times(start, browser):
    srv = start("sqlite", "--read-token", "R", "--write-token", "W")
    page, foreign, errors = open_playground(browser, srv)
    set_token(page, "R")
    page.get_by_role("alert").wait_for(state="detached", timeout=15_000)
    # The example tab "Live" subscribes to buildsetAdded.
    page.locator(".graphiql-tab", has_text="Live").click()
    page.wait_for_timeout(800)
    page.locator(".graphiql-execute-button").click()
    page.wait_for_timeout(1500)
    builder = srv.ok('mutation { ensureBuilder(name: "b") { builderid } }', token="W")
    for reason in ("first event", "second event"):
        srv.ok("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }",
               {"in": {"reason": reason, "sourcestamps": [{"stamp": {"branch": "m"}}],
                       "builderids": [builder["ensureBuilder"]["builderid"]]}}, token="W")
    wait_for_result(page, "second event")
    shown = json.loads(result_text(page))
    assert shown["received"] == 2, shown
    reasons = [e["data"]["buildsetAdded"]["reason"] for e in shown["events"]]
    assert reasons == ["first event", "second event"], shown
    times = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in shown["events"]]
    assert times == sorted(times), times
    assert not foreign and not errors, (foreign, errors)


def test_playground_explorer_lists_the_query_fields(start, browser):
    srv = start("sqlite")
    page, foreign, errors = open_playground(browser, srv)
    page.get_by_role("button", name="Show GraphiQL Explorer").click()
    root = page.locator(".graphiql-explorer-root")
    root.wait_for(timeout=15_000)
    for field in ("buildset", "buildsets", "builders"):
        root.get_by_text(field, exact=True).first.wait_for(timeout=15_000)
    assert not foreign and not errors, (foreign, errors)


def test_playground_examples_and_welcome_fit(start, browser):
    """The example tabs are there; no line of theirs (the welcome comment first) is
    cut at 1440 px."""
    srv = start("sqlite")
    page, foreign, errors = open_playground(browser, srv, width=1440, height=900)
    tabs = page.locator(".graphiql-tab").all_inner_texts()
    for name in ("Page", "Buildset", "Add", "Complete", "Live"):
        assert any(name in t for t in tabs), tabs
    for name in ("Page", "Buildset", "Add", "Complete", "Live"):
        page.locator(".graphiql-tab", has_text=name).click()
        page.wait_for_timeout(300)
        fits = page.evaluate("""() => {
          const s = document.querySelector('.graphiql-query-editor .CodeMirror-scroll');
          return [s.scrollWidth, s.clientWidth];
        }""")
        assert 0 < fits[0] <= fits[1], (name, fits)
    assert not foreign and not errors, (foreign, errors)


def test_playground_examples_run(start, browser):
    """Page, Buildset, Add and Complete run as they are on a fresh database, and Add
    then Complete (with the bsid Add answered) run again."""
    srv = start("sqlite", "--write-token", "W")
    page, foreign, errors = open_playground(browser, srv)
    set_token(page, "W")
    answers = {}
    for name in ("Page", "Buildset", "Add", "Complete"):
        page.locator(".graphiql-tab", has_text=name).click()
        page.wait_for_timeout(800)
        page.locator(".graphiql-execute-button").click()
        page.wait_for_function(
            "() => document.querySelector('.result-window .CodeMirror')"
            ".CodeMirror.getValue().includes('\"data\"')", timeout=15_000)
        answers[name] = json.loads(result_text(page))
        assert "errors" not in answers[name], (name, answers[name])
    assert answers["Add"]["data"]["addBuildset"]["bsid"] == 1
    assert answers["Complete"]["data"]["completeBuildset"]["complete"] is True
    # Once more, as a person would: Add, then Complete with the bsid it answered.
    tabs = json.loads(page.evaluate("() => localStorage.getItem('graphiql:tabState')"))["tabs"]
    ops = {t["title"]: t for t in tabs}
    add = srv.ok(ops["Add"]["query"], json.loads(ops["Add"]["variables"]), token="W")
    bsid = add["addBuildset"]["bsid"]
    assert bsid == 2
    done = srv.ok(ops["Complete"]["query"], {"bsid": bsid}, token="W")
    assert done["completeBuildset"]["bsid"] == bsid
    assert not foreign and not errors, (foreign, errors)


def test_playground_is_usable_at_400px(start, browser):
    srv = start("sqlite")
    srv.ok('mutation { ensureBuilder(name: "narrow") { builderid } }')
    page, foreign, errors = open_playground(browser, srv, width=400, height=800)
    type_query(page, "{ builders { name")
    run_query(page)
    wait_for_result(page, "narrow")
    for pane in (".graphiql-query-editor", ".graphiql-response", "#bsgql-token"):
        box = page.locator(pane).first.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, (pane, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= 400, (pane, box)
    assert not foreign and not errors, (foreign, errors)


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
