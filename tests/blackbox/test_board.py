"""The board at `/`, in a real Chromium (Debian's, driven by Playwright), with no
network beyond loopback: it renders a seeded database in one query and one socket;
a buildset Buildbot's own connector writes appears without a reload and its
completion changes its colour in place; filters round-trip through the address;
"Older" pages through the Relay cursor; the token prompt; the socket reconnects after
the server restarts and catches up on what it missed; keyboard and 400 px; exact
JSON in the detail panel; a server that runs only trusted documents still serves it.

With BOARD_SCREENSHOTS=DIR the run saves the board and the grid there (the README's
pictures come from `BOARD_SCREENSHOTS=docs`)."""

import gzip
import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import BIN, ROOT, database, free_port, terminate
from test_browser import browser, loopback_only  # noqa: F401 (fixtures)
from test_subscriptions import buildbot

ADD = "mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }"
COMPLETE = "mutation($b: Int!, $r: Int!) { completeBuildset(bsid: $b, results: $r) { bsid } }"


def builder(srv, name, token=None):
    q = "mutation($n: String!) { ensureBuilder(name: $n) { builderid } }"
    return srv.ok(q, {"n": name}, token=token)["ensureBuilder"]["builderid"]


def add(srv, reason, builderids, branch="main", repository="https://example.org/repo.git",
        properties=(), token=None, **extra):
    inp = {"reason": reason, "builderids": builderids,
           "sourcestamps": [{"stamp": {"repository": repository, "branch": branch,
                                       "revision": "0123456789abcdef0123456789abcdef01234567"}}],
           "properties": list(properties), **extra}
    return srv.ok(ADD, {"in": inp}, token=token)["addBuildset"]["bsid"]


def open_board(browser, url, **page_options):
    """A new page on `url` with the board's first screen shown; (page, log) where log
    counts what the page asked the server for."""
    page = browser.new_page(**page_options)
    log = {"errors": [], "posts": [], "sockets": [], "navigations": 0}
    page.on("pageerror", lambda e: log["errors"].append(str(e)))
    page.on("console", lambda m: log["errors"].append(m.text) if m.type == "error" else None)
    page.on("websocket", lambda ws: log["sockets"].append(ws.url))

    def request(r):
        if r.method == "POST" and r.url.endswith("/graphql"):
            log["posts"].append(json.loads(r.post_data or "{}").get("operationName"))
        if r.is_navigation_request():
            log["navigations"] += 1

    page.on("request", request)
    log["seen"] = loopback_only(page)
    page.goto(url)
    page.wait_for_selector("#live.up", timeout=15_000)
    page.wait_for_function("() => !document.querySelector('#message').textContent.startsWith('Loading')")
    return page, log


def statuses(page):
    rows = page.eval_on_selector_all(".item", "els => els.map(e => [Number(e.dataset.bsid), e.dataset.status])")
    return [tuple(r) for r in rows]


def shot(page, name):
    folder = os.environ.get("BOARD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))


def seed(srv):
    """Eight buildsets over three builders: each result code, pending ones, a patch."""
    ids = [builder(srv, n) for n in ("linux", "macos", "windows")]
    bsids = []
    for i, code in enumerate([0, 1, 2, 3, 4, 5, 6, None]):
        bsid = add(srv, f"seeded {i}", ids[: 1 + i % 3], branch="main" if i % 2 else "release",
                   properties=[{"name": "owner", "value": f"dev{i}@example.org", "source": "Change"}],
                   scheduler="nightly")
        if code is not None:
            srv.ok(COMPLETE, {"b": bsid, "r": code})
        bsids.append(bsid)
    return ids, bsids


def test_the_board_renders_a_seeded_database_in_one_query_and_one_socket(start, browser):
    srv = start("sqlite")
    _, bsids = seed(srv)
    page, log = open_board(browser, srv.base + "/", viewport={"width": 1200, "height": 900})
    expected = ["success", "warnings", "failure", "skipped", "exception", "retry", "cancelled", "pending"]
    assert statuses(page) == list(zip(reversed(bsids), reversed(expected)))
    # Each status has its word and symbol beside its colour.
    first = page.locator(".row").first
    assert first.locator(".badge").inner_text().split() == ["◌", "pending"]
    assert page.locator(".row[data-bsid='%d'] .badge" % bsids[2]).inner_text().split() == ["✗", "failure"]
    text = first.inner_text()
    for part in ("seeded 7", "dev7@example.org", "nightly", "main", "01234567", "linux"):
        assert part in text, (part, text)
    # Times are relative, with the exact time on hover.
    t = first.locator("time").first
    assert t.inner_text() in ("just now",) or t.inner_text().endswith("s ago"), t.inner_text()
    assert t.get_attribute("datetime") in t.get_attribute("title")
    # One query and one socket for the first screen, and nothing beyond this machine.
    assert log["posts"] == ["Board"], log["posts"]
    assert log["seen"] and all(urlsplit(u).hostname == "127.0.0.1" for u in log["seen"]), log["seen"]
    assert len(log["sockets"]) == 1 and log["sockets"][0].endswith("/graphql/ws"), log["sockets"]
    assert not log["errors"], log["errors"]
    page.click("#view-grid")
    page.wait_for_selector("table.grid")
    heads = page.eval_on_selector_all("table.grid thead th", "els => els.map(e => e.innerText)")
    assert heads == ["Buildset", "linux", "macos", "windows"], heads
    # A cell per build request: the pending buildset (seeded 7) asked linux and macos.
    cells = page.locator("tr[data-bsid='%d'] td.cell" % bsids[-1])
    assert cells.count() == 2, cells.count()
    assert "view=grid" in page.url


def test_the_board_shows_what_a_master_wrote(start, browser):
    """A database as Buildbot's own connector leaves it after a day's work: builds
    numbered per builder, some running, one retried, every result. The README's
    pictures are this test's (BOARD_SCREENSHOTS)."""
    url = database("sqlite")
    buildbot("create", url)
    bsids = buildbot("showcase", url)["bsids"]
    srv = start("sqlite", db_url=url)
    page, log = open_board(browser, srv.base + "/", viewport={"width": 1280, "height": 1000})
    expected = ["success", "warnings", "failure", "warnings", "exception", "cancelled",
                "running", "running", "running", "pending"]
    assert statuses(page) == list(zip(reversed(bsids), reversed(expected)))
    # A request's chip: its state and its latest build's number.
    retried = page.locator(f".row[data-bsid='{bsids[6]}'] .chip")
    parts = retried.inner_text().split()
    assert parts[:2] == ["▶", "windows"] and parts[2].startswith("#") and parts[3:] == [":", "running"], parts
    running = page.locator(f".row[data-bsid='{bsids[7]}'] .chip")
    assert [c.split()[0] for c in running.all_inner_texts()] == ["✓", "✓", "▶", "▶", "✓"]
    failed = page.locator(f".row[data-bsid='{bsids[2]}'] .chip.s-failure")
    assert failed.inner_text().split()[:2] == ["✗", "linux-clang"]
    assert "carol@example.org" in page.inner_text(f".row[data-bsid='{bsids[2]}'] .meta")
    shot(page, "board.png")
    page.click("#view-grid")
    page.wait_for_selector("table.grid")
    heads = page.eval_on_selector_all("table.grid thead th", "els => els.map(e => e.innerText)")
    assert heads == ["Buildset", "docs", "linux-clang", "linux-gcc", "macos", "windows"], heads
    row = page.locator(f"tr[data-bsid='{bsids[0]}'] td")
    assert [c.strip().split()[0] for c in row.all_inner_texts()] == ["✓", "✓", "✓", "✓", "✓"]
    shot(page, "grid.png")
    page.locator(f"tr[data-bsid='{bsids[6]}']").click()
    page.wait_for_selector("#detail table.requests")
    builds = page.eval_on_selector_all("#detail table.requests ul.builds li", "els => els.map(e => e.innerText)")
    assert len(builds) == 2 and builds[1].endswith("building"), builds  # the retried build, then the running one
    assert not log["errors"], log["errors"]


def test_the_page_is_small_self_contained_and_strict(start):
    srv = start("sqlite")
    page = httpx.get(srv.base + "/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp, csp
    assert "http://" not in page.text.replace(srv.base, "") and "https://" not in page.text
    total = len(gzip.compress(page.content, 9))
    for asset in ("board.js", "board.css"):
        r = httpx.get(f"{srv.base}/board/assets/{asset}")
        assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
        again = httpx.get(f"{srv.base}/board/assets/{asset}", headers={"if-none-match": r.headers["etag"]})
        assert again.status_code == 304
        total += len(gzip.compress(r.content, 9))
    assert total < 100_000, total
    # The operations on the page are the committed manifest's, which the server also serves.
    committed = json.loads((ROOT / "src/http/board/persisted-query-manifest.json").read_text())
    served = httpx.get(srv.base + "/board/persisted-query-manifest.json").json()
    assert served == committed
    block = page.text.split('id="operations">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block) == {op["name"]: op["body"] for op in committed["operations"]}
    for op in committed["operations"]:
        name = op["name"]
        assert op["body"].startswith((ROOT / f"src/http/board/operations/{name}.graphql").read_text().rstrip())


def test_a_buildset_buildbot_writes_appears_live_and_its_completion_changes_its_colour(start, browser):
    url = database("sqlite")
    buildbot("create", url)
    srv = start("sqlite", "--poll-interval-ms", "200", db_url=url)
    page, log = open_board(browser, srv.base + "/")
    page.evaluate("window.stillTheSamePage = true")
    assert page.locator(".row").count() == 0
    added = buildbot("add", url, "from-buildbot")
    bsid = added["bsid"]
    row = page.locator(f".row[data-bsid='{bsid}']")
    row.wait_for(timeout=15_000)
    assert row.get_attribute("data-status") == "pending"
    assert "added by Buildbot" in row.inner_text() and "from-buildbot" in row.inner_text()
    assert "bb-live" in row.locator(".chips").inner_text()
    before = row.evaluate("e => getComputedStyle(e.querySelector('.badge')).color")
    buildbot("complete", url, str(bsid), "2")
    page.wait_for_function(f"() => document.querySelector(\".row[data-bsid='{bsid}']\").dataset.status === 'failure'",
                           timeout=15_000)
    after = row.evaluate("e => getComputedStyle(e.querySelector('.badge')).color")
    assert before != after, (before, after)
    assert row.locator(".badge").inner_text().split() == ["✗", "failure"]
    assert page.evaluate("window.stillTheSamePage") is True
    assert log["navigations"] == 1 and log["posts"] == ["Board"], log
    assert not log["errors"], log["errors"]


def test_filters_round_trip_through_the_address(start, browser):
    srv = start("sqlite")
    ids, bsids = seed(srv)
    page, log = open_board(browser, srv.base + "/")
    page.fill("#f-branch", "release")
    page.press("#f-branch", "Enter")
    page.wait_for_function("() => location.search === '?branch=release'")
    page.wait_for_function("() => document.querySelectorAll('.row').length === 4")
    assert {b for b, _ in statuses(page)} == {bsids[i] for i in (0, 2, 4, 6)}
    page.select_option("#f-builder", str(ids[1]))
    page.wait_for_function("() => document.querySelectorAll('.row').length === 2")
    page.select_option("#f-result", "exception")
    page.wait_for_function("() => location.search.includes('result=exception')")
    page.wait_for_function("() => document.querySelectorAll('.row').length === 1")
    assert statuses(page) == [(bsids[4], "exception")]
    shared = page.url
    assert f"builder={ids[1]}" in shared and "result=exception" in shared and "complete=true" in shared
    # The shared address shows the same view in a new page.
    other, _ = open_board(browser, shared)
    other.wait_for_selector(".row")
    assert statuses(other) == [(bsids[4], "exception")]
    assert other.input_value("#f-branch") == "release"
    assert other.input_value("#f-builder") == str(ids[1])
    assert other.input_value("#f-result") == "exception"
    # Back goes to the previous view; a live event outside the filters stays out.
    page.go_back()
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('.row').length === 4")
    assert page.input_value("#f-result") == ""
    add(srv, "on main, not shown", [ids[0]], branch="main")
    fresh = add(srv, "on release, shown", [ids[0]], branch="release")
    page.locator(f".row[data-bsid='{fresh}']").wait_for(timeout=15_000)
    assert page.locator(".row").count() == 5
    page.click("#f-clear")
    page.wait_for_function("() => location.search === ''")
    page.wait_for_function("() => document.querySelectorAll('.row').length === 10")
    assert not log["errors"], log["errors"]


def test_older_pages_through_the_relay_cursor(start, browser):
    srv = start("sqlite")
    b = builder(srv, "b")
    ids = [add(srv, f"n{i}", [b]) for i in range(120)]
    page, log = open_board(browser, srv.base + "/")
    assert page.locator(".row").count() == 50
    page.click("#older")
    page.wait_for_function("() => document.querySelectorAll('.row').length === 100")
    page.click("#older")
    page.wait_for_function("() => document.querySelectorAll('.row').length === 120")
    assert page.locator("#older").is_hidden()
    assert [bsid for bsid, _ in statuses(page)] == list(reversed(ids))
    assert log["posts"] == ["Board", "Older", "Older"], log["posts"]


def test_the_token_prompt_reads_and_cancels_and_keeps_the_token_out_of_the_address(start, browser):
    srv = start("sqlite", "--read-token", "R", "--write-token", "W")
    b = builder(srv, "b", token="W")
    bsid = add(srv, "to be cancelled", [b], token="W")
    page = browser.new_page()
    seen = loopback_only(page)
    page.goto(srv.base + "/")
    dialog = page.locator("#token-dialog")
    dialog.wait_for(state="visible", timeout=15_000)
    assert "token" in page.inner_text("#token-why").lower()
    page.fill("#token-input", "R")
    page.click("#token-use")
    page.locator(f".row[data-bsid='{bsid}']").wait_for(timeout=15_000)
    page.wait_for_selector("#live.up", timeout=15_000)
    assert page.evaluate("sessionStorage.getItem('buildsets-graphql.board.token')") == "R"
    assert page.evaluate("localStorage.length") == 0
    # Cancel: a confirmation, then the read token is not enough, so the write token is asked for.
    page.click(f".row[data-bsid='{bsid}'] button.cancel")
    page.locator("#confirm-dialog").wait_for(state="visible")
    page.click("#confirm-yes")
    dialog.wait_for(state="visible", timeout=15_000)
    assert "write token" in page.inner_text("#token-why")
    page.fill("#token-input", "W")
    page.click("#token-use")
    page.wait_for_function(
        f"() => document.querySelector(\".row[data-bsid='{bsid}']\").dataset.status === 'cancelled'", timeout=15_000)
    # Kept across a reload of the tab, never in the address or a request's URL.
    page.reload()
    page.locator(f".row[data-bsid='{bsid}']").wait_for(timeout=15_000)
    assert not page.locator("#token-dialog").is_visible()
    assert all("R" not in u.split("?", 1)[-1] and "W" not in u.split("?", 1)[-1] for u in seen if "?" in u), seen
    assert "token" not in page.url.lower()
    # Keeping it: the cancel of another asks for a confirmation, and "Keep it" sends nothing.
    other = add(srv, "kept", [b], token="W")
    page.locator(f".row[data-bsid='{other}']").wait_for(timeout=15_000)
    posts = []
    page.on("request", lambda r: posts.append(r.post_data) if r.method == "POST" else None)
    page.click(f".row[data-bsid='{other}'] button.cancel")
    page.click("#confirm-no")
    page.wait_for_timeout(300)
    assert posts == []
    assert srv.ok("{ buildset(bsid: %d) { complete } }" % other, token="R")["buildset"]["complete"] is False


def spawn(db_url, port):
    proc = subprocess.Popen([BIN, "--database-url", db_url, "--listen", f"127.0.0.1:{port}",
                             "--poll-interval-ms", "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    terminate(proc)
    raise RuntimeError("the server did not start")


def test_the_socket_reconnects_after_a_restart_and_catches_up(browser):
    url = database("sqlite")
    buildbot("create", url)
    done_while_down = buildbot("add", url, "before")["bsid"]
    port = free_port()
    proc = spawn(url, port)
    try:
        page, log = open_board(browser, f"http://127.0.0.1:{port}/")
        page.evaluate("window.stillTheSamePage = true")
        assert statuses(page) == [(done_while_down, "pending")]
        terminate(proc)
        page.wait_for_selector("#live.down", timeout=15_000)
        assert "reconnecting" in page.inner_text("#live")
        # What happens while the server is down: Buildbot adds one and completes another.
        missed = buildbot("add", url, "while-down")["bsid"]
        buildbot("complete", url, str(done_while_down), "0")
        proc = spawn(url, port)
        page.wait_for_selector("#live.up", timeout=30_000)
        page.locator(f".row[data-bsid='{missed}']").wait_for(timeout=15_000)
        page.wait_for_function(
            f"() => document.querySelector(\".row[data-bsid='{done_while_down}']\").dataset.status === 'success'",
            timeout=15_000)
        assert statuses(page) == [(missed, "pending"), (done_while_down, "success")]
        assert page.evaluate("window.stillTheSamePage") is True
        assert log["posts"] == ["Board", "CatchUp"], log["posts"]
        assert len(log["sockets"]) >= 2
        # And it is live again.
        after = buildbot("add", url, "after")["bsid"]
        page.locator(f".row[data-bsid='{after}']").wait_for(timeout=15_000)
    finally:
        terminate(proc)


def test_keyboard_focus_and_400_px(start, browser):
    srv = start("sqlite")
    _, bsids = seed(srv)
    page, log = open_board(browser, srv.base + "/", viewport={"width": 400, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    page.keyboard.press("j")
    focused = page.evaluate("document.activeElement.dataset.bsid")
    assert focused == str(bsids[-1])
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.locator("#detail").wait_for(state="visible")
    page.wait_for_selector("#detail-title")
    assert f"#{bsids[-2]}" in page.inner_text("#detail-title")
    assert f"bs={bsids[-2]}" in page.url
    page.keyboard.press("Escape")
    page.locator("#detail").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.dataset.bsid") == str(bsids[-2])
    page.keyboard.press("g")
    page.wait_for_selector("table.grid")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "f-branch"
    assert not log["errors"], log["errors"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colours_follow_the_system_setting(start, browser, scheme):
    srv = start("sqlite")
    seed(srv)
    page, _ = open_board(browser, srv.base + "/", color_scheme=scheme)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(255, 255, 255)" if scheme == "light" else "rgb(20, 23, 27)"), background


def test_the_detail_panel_shows_properties_exactly_with_the_patch(start, browser):
    srv = start("sqlite")
    b = builder(srv, "b")
    raw = ('{"query": "mutation { addBuildset(input: {reason: \\"exact\\", builderids: [%d], '
           'sourcestamps: [{stamp: {branch: \\"main\\", patch: {body: \\"--- a\\\\n+++ b\\\\n\\", author: \\"ann\\", comment: \\"try\\"}}}], '
           'properties: [{name: \\"ratio\\", value: 1.0, source: \\"test\\"}, '
           '{name: \\"big\\", value: 12345678901234567890, source: \\"test\\"}, '
           '{name: \\"tree\\", value: {a: [1, null, \\"<b>x</b>\\"]}, source: \\"S\\"}]}) { bsid } }"}') % b
    out = srv.http.post("/graphql", content=raw, headers={"content-type": "application/json"}).json()
    bsid = out["data"]["addBuildset"]["bsid"]
    page, log = open_board(browser, f"{srv.base}/?bs={bsid}")
    page.wait_for_selector("#detail table.props")
    rows = page.eval_on_selector_all("#detail table.props tbody tr",
                                     "els => els.map(e => [...e.children].map(c => c.innerText))")
    assert rows == [
        ["big", "12345678901234567890", "test"],
        ["ratio", "1.0", "test"],
        ["tree", '{\n  "a": [\n    1,\n    null,\n    "<b>x</b>"\n  ]\n}', "S"],
    ], rows
    assert page.locator("#detail b").count() == 0  # text, never markup
    page.click("#detail details.patch-body summary")
    assert "+++ b" in page.inner_text("#detail details.patch-body pre")
    assert "ann" in page.inner_text("#detail details.patch-body summary")
    assert not log["errors"], log["errors"]


def test_the_board_works_on_a_server_that_runs_only_trusted_documents(start, browser, tmp_path):
    manifest = tmp_path / "other.json"
    manifest.write_text(json.dumps({"someid": "{ builders { name } }"}))
    open_server = start("sqlite")
    _, bsids = seed(open_server)
    srv = start("sqlite", "--trusted-documents", str(manifest), db_url=open_server.db_url)
    assert srv.post_raw("{ buildsets { totalCount } }").status_code == 403
    assert srv.post_raw('mutation { ensureBuilder(name: "x") { builderid } }').status_code == 403
    page, log = open_board(browser, srv.base + "/")
    assert [b for b, _ in statuses(page)] == list(reversed(bsids))
    page.locator(".row").first.click()
    page.wait_for_selector("#detail table.props")
    # Live too: a buildset added elsewhere shows up.
    fresh = add(open_server, "added elsewhere", [builder(open_server, "linux")])
    page.locator(f".row[data-bsid='{fresh}']").wait_for(timeout=15_000)
    assert not log["errors"], log["errors"]
    assert log["posts"] == ["Board", "Detail"], log["posts"]


def test_the_token_button_and_a_failed_load_both_lead_back_to_the_rows(start, browser):
    srv = start("sqlite", "--read-token", "R", "--write-token", "W")
    bsid = add(srv, "behind a token", [builder(srv, "b", token="W")], token="W")
    page = browser.new_page()
    loopback_only(page)
    page.goto(srv.base + "/")
    page.locator("#token-dialog").wait_for(state="visible", timeout=15_000)
    page.keyboard.press("Escape")  # no token now
    page.wait_for_function("() => document.querySelector('#message').textContent.includes('UNAUTHENTICATED')")
    # Later, from the Token button: the view loads with it, and the socket is live.
    page.click("#token-button")
    page.fill("#token-input", "R")
    page.click("#token-use")
    page.locator(f".row[data-bsid='{bsid}']").wait_for(timeout=15_000)
    page.wait_for_selector("#live.up", timeout=15_000)
    assert page.inner_text("#message") == ""
    # Forgetting it from the button asks again at once.
    page.click("#token-button")
    page.click("#token-forget")
    page.locator("#token-dialog").wait_for(state="visible", timeout=15_000)
    page.fill("#token-input", "R")
    page.click("#token-use")
    page.locator(f".row[data-bsid='{bsid}']").wait_for(timeout=15_000)

    # A first load that fails offers to try again (here the socket stays up, so only
    # the button brings the rows).
    srv = start("sqlite")
    bsid = add(srv, "after a failed load", [builder(srv, "b")])
    other = browser.new_page()
    loopback_only(other)
    failed = []

    def once(route):
        if not failed and route.request.method == "POST":
            failed.append(route.request.url)
            return route.abort()
        return route.continue_()

    other.route("**/graphql", once)
    other.goto(srv.base + "/")
    other.wait_for_selector("#message button.again", timeout=15_000)
    assert "cannot be reached" in other.inner_text("#message")
    other.click("#message button.again")
    other.locator(f".row[data-bsid='{bsid}']").wait_for(timeout=15_000)
    assert failed


def test_the_detail_panel_is_a_modal_dialog(start, browser):
    srv = start("sqlite")
    _, bsids = seed(srv)
    page, log = open_board(browser, srv.base + "/", viewport={"width": 400, "height": 800})
    page.locator(f".row[data-bsid='{bsids[0]}']").click()
    page.wait_for_selector("#detail table.props")
    assert "null" not in page.inner_text("#detail")
    # Tab stays in the panel: the page under it is inert (past its last control focus
    # may visit the browser's own UI, seen here as the body).
    for _ in range(12):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('detail').contains(document.activeElement)"
                             " || document.activeElement === document.body")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") != "f-branch"
    # A click beside it (on the backdrop) closes it at a wide window.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.mouse.click(20, 400)
    page.locator("#detail").wait_for(state="hidden")
    page.wait_for_function("() => !location.search.includes('bs=')")
    # Closing took its history entry back: Forward opens it again, Back closes it.
    page.go_forward()
    page.locator("#detail").wait_for(state="visible")
    page.go_back()
    page.locator("#detail").wait_for(state="hidden")
    # An open panel follows its buildset, also when it leaves the filtered view.
    other, _ = open_board(browser, f"{srv.base}/?complete=false&bs={bsids[-1]}")
    other.wait_for_selector("#detail table.props")
    assert "pending" in other.inner_text("#detail-title")
    srv.ok(COMPLETE, {"b": bsids[-1], "r": 0})
    other.wait_for_function("() => document.getElementById('detail-title').innerText.includes('success')",
                            timeout=15_000)
    assert other.locator(f".row[data-bsid='{bsids[-1]}']").count() == 0
    assert not log["errors"], log["errors"]


def test_hostile_text_stays_text_and_long_text_stays_inside_400_px(start, browser):
    srv = start("sqlite")
    long_name = "x" * 3000
    b = builder(srv, long_name)
    nasty = "<img src=x onerror=\"document.title='pwned'\">"
    bsid = add(srv, nasty + " " + "y" * 200, [b], branch=nasty + "z" * 200,
               properties=[{"name": "owners", "value": [f"person{i}@example.org" for i in range(12)], "source": "Change"},
                           {"name": "p" * 256, "value": "v" * 5000, "source": nasty}])
    dialogs = []
    page, log = open_board(browser, srv.base + "/", viewport={"width": 400, "height": 800})
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    assert page.locator(f".row[data-bsid='{bsid}']").count() == 1
    assert page.locator("img").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    owner = page.locator(f".row[data-bsid='{bsid}'] .owner")
    assert owner.inner_text() == "person0@example.org, person1@example.org +10"
    page.set_viewport_size({"width": 1280, "height": 800})
    # The reason keeps most of the row however long the owners are.
    width = page.evaluate(f"document.querySelector(\".row[data-bsid='{bsid}'] .body\").getBoundingClientRect().width")
    assert width > 600, width
    page.keyboard.press("g")
    page.wait_for_selector("table.grid")
    page.set_viewport_size({"width": 400, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    page.keyboard.press("g")
    page.locator(f".row[data-bsid='{bsid}']").click()
    page.wait_for_selector("#detail table.props")
    assert page.evaluate("document.getElementById('detail').scrollWidth") <= 400
    assert page.locator("img").count() == 0
    assert page.title() != "pwned" and not dialogs
    assert not log["errors"], log["errors"]


def test_state_and_result_filters_agree(start, browser):
    srv = start("sqlite")
    seed(srv)
    page, _ = open_board(browser, srv.base + "/")
    page.select_option("#f-result", "failure")
    page.wait_for_function("() => location.search.includes('result=failure')")
    assert page.input_value("#f-complete") == "true"
    page.select_option("#f-complete", "false")
    page.wait_for_function("() => location.search === '?complete=false'")
    assert page.input_value("#f-result") == ""
    page.wait_for_function("() => document.querySelectorAll('.row').length === 1")
    # What the board cannot read leaves the address.
    page.goto(srv.base + "/?bs=1e3&builder=00001&result=nope&complete=maybe&view=list")
    page.wait_for_selector("#live.up")
    assert page.evaluate("location.search") == ""
    assert page.locator("#detail").is_hidden()


def test_the_board_routes_answer_sanely(start):
    srv = start("sqlite")
    page = httpx.get(srv.base + "/")
    weak = httpx.get(srv.base + "/", headers={"if-none-match": "W/" + page.headers["etag"]})
    assert weak.status_code == 304
    post = httpx.post(srv.base + "/", content=b"{}")
    assert post.status_code == 405 and post.headers["allow"] == "GET"
    assert post.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "board" in post.json()["errors"][0]["message"]
    missing = httpx.get(srv.base + "/board/assets/" + "a" * 5000)
    assert missing.status_code == 404 and len(missing.text) < 500
    assert missing.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    for path in ("/board/assets/..%2f..%2fetc%2fpasswd", "/board/assets/%2e%2e", "/board/nothing"):
        r = httpx.get(srv.base + path)
        assert r.status_code == 404 and r.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND", (path, r.text)


def test_a_buildset_added_while_the_first_screen_loads_is_kept(start, browser):
    """The socket is subscribed before the first query; an event that arrives before
    the query's (older) answer is merged into it, not dropped."""
    srv = start("sqlite", "--poll-interval-ms", "100")
    b = builder(srv, "b")
    before = add(srv, "before", [b])
    page = browser.new_page()
    loopback_only(page)
    added = []

    def late_answer(route):
        if route.request.method != "POST" or added:
            return route.continue_()
        answer = route.fetch()  # the snapshot, without what follows
        added.append(add(srv, "while the page loads", [b]))
        time.sleep(1.5)  # the event reaches the page meanwhile
        route.fulfill(response=answer)

    page.route("**/graphql", late_answer)
    page.goto(srv.base + "/")
    page.locator(f".row[data-bsid='{before}']").wait_for(timeout=15_000)
    page.locator(f".row[data-bsid='{added[0]}']").wait_for(timeout=15_000)
    assert statuses(page) == [(added[0], "pending"), (before, "pending")]
