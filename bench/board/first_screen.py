"""Time to a full first screen of the board (`/`), measured by the browser itself.

Headless Chromium (Debian's /usr/bin/chromium, through Playwright's sync API) loads
the board N times, each in a new browser context (nothing cached, no cookies, a new
renderer), and reads every figure from the page's own clock (performance.now(), ms
since the navigation started):

  * navigation entry: responseEnd, domContentLoadedEventEnd, loadEventEnd;
  * the Board query's resource timing entry (POST /graphql): responseEnd, sizes;
  * rows: when `#rows` first holds >= 1 child `.row` (a MutationObserver installed by
    an init script, before any of the page's scripts; the board renders its whole
    first page of rows in one replaceChildren, so that is the full first screen),
    with the row count at that moment; rows_frame: the next frame after it
    (requestAnimationFrame, then a task), i.e. about when those rows were painted;
  * live: when `#live` gets class `up` (the socket's connection_ack);
  * FCP and the last LCP candidate before the rows, when Chromium reports them.

It counts the POSTs to /graphql started before the rows appeared (and all of them,
with their operation names, until the load settles), the WebSockets opened, and
fails if any request (HTTP or WebSocket) goes anywhere but 127.0.0.1, or the page
throws. A baseline in the same run, alternating with the board loads: a cold
navigation to a trivial page of the same server (`/healthz` by default), so that the
figures can be read as ratios on a noisy machine. Optional warm reloads: the same
context reloads the page (the board's answers are no-cache + ETag: 304s).

    .venv-blackbox/bin/python bench/board/first_screen.py http://127.0.0.1:8080 \
        [--cold 10] [--warm 0] [--baseline /healthz] [--viewport 1280x800] \
        [--label sqlite] [--markdown] [--out summary.json]

Prints a JSON summary (median, p90 and max of every timing, the counts, the sizes of
the page, board.js, board.css and the Board answer, raw and gzip -9) on stdout;
`--markdown` also prints a Markdown table. Progress goes to stderr.
"""

import argparse
import gzip
import json
import math
import statistics
import sys
import time
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu"]
ALLOWED_HOSTS = {"127.0.0.1"}

# Installed in every document of the context before the page's own scripts.
INIT_SCRIPT = r"""
(() => {
  if (window.__fs) return;
  const fs = (window.__fs = { rows: null, rowCount: 0, rowsFrame: null, live: null, lcp: [] });
  let mo = null;
  const check = () => {
    if (fs.rows === null) {
      const r = document.getElementById('rows');
      if (r) {
        let n = 0;
        for (const c of r.children) if (c.classList.contains('row')) n += 1;
        if (n > 0) {
          fs.rows = performance.now();
          fs.rowCount = n;
          requestAnimationFrame(() => setTimeout(() => { fs.rowsFrame = performance.now(); }, 0));
        }
      }
    }
    if (fs.live === null) {
      const l = document.getElementById('live');
      if (l && l.classList.contains('up')) fs.live = performance.now();
    }
    if (fs.rows !== null && fs.live !== null && mo) mo.disconnect();
  };
  mo = new MutationObserver(check);
  mo.observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ['class'] });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const el = e.element;
        fs.lcp.push({ t: e.startTime, size: e.size,
                      el: el ? (el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + String(el.className).split(' ')[0] : '')) : null });
      }
    }).observe({ type: 'largest-contentful-paint', buffered: true });
  } catch (e) { /* no LCP here */ }
})();
"""

COLLECT = r"""
() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource').map((e) => ({
    name: e.name, initiatorType: e.initiatorType, startTime: e.startTime,
    responseStart: e.responseStart, responseEnd: e.responseEnd,
    transferSize: e.transferSize, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize,
  }));
  const paint = {};
  for (const p of performance.getEntriesByType('paint')) paint[p.name] = p.startTime;
  return {
    nav: nav ? { responseStart: nav.responseStart, responseEnd: nav.responseEnd,
                 domContentLoadedEventEnd: nav.domContentLoadedEventEnd,
                 loadEventEnd: nav.loadEventEnd, transferSize: nav.transferSize,
                 decodedBodySize: nav.decodedBodySize, type: nav.type } : null,
    resources: res,
    paint,
    fs: window.__fs || null,
    message: (document.getElementById('message') || {}).textContent || '',
  };
}
"""

READY = "() => window.__fs && window.__fs.rows !== null && window.__fs.rowsFrame !== null && window.__fs.live !== null && document.readyState === 'complete'"
# --stall-socket: the socket opens but is never acknowledged, so #live never goes up.
READY_NO_LIVE = "() => window.__fs && window.__fs.rows !== null && window.__fs.rowsFrame !== null && document.readyState === 'complete'"


class LoadError(Exception):
    pass


def host_ok(url):
    if url.startswith(("data:", "blob:", "about:")):
        return True
    return urlsplit(url).hostname in ALLOWED_HOSTS


def operation_name(request):
    try:
        return json.loads(request.post_data or "{}").get("operationName")
    except (ValueError, AttributeError):
        return None


def board_load(page, url, timeout_ms, settle_ms, reload=False, stall=False):
    """One load of the board in `page` (new document); its figures."""
    requests, sockets, offhost, errors, finished = [], [], [], [], []

    def on_request(r):
        if not host_ok(r.url):
            offhost.append(r.url)
        requests.append(r)

    def on_ws(ws):
        if not host_ok(ws.url):
            offhost.append(ws.url)
        sockets.append(ws.url)

    def on_finished(r):
        finished.append(r)

    handlers = [("request", on_request), ("websocket", on_ws), ("requestfinished", on_finished),
                ("requestfailed", on_finished),
                ("pageerror", lambda e: errors.append(f"pageerror: {e}")),
                ("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))]
    for ev, fn in handlers:
        page.on(ev, fn)
    try:
        if reload:
            page.reload(wait_until="load", timeout=timeout_ms)
        else:
            page.goto(url, wait_until="load", timeout=timeout_ms)
        try:
            page.wait_for_function(READY_NO_LIVE if stall else READY, timeout=timeout_ms)
        except Exception as e:  # noqa: BLE001 - say what the page shows
            msg = page.evaluate("() => (document.getElementById('message') || {}).textContent || ''")
            raise LoadError(f"no full first screen within {timeout_ms} ms (message: {msg!r}): {e}") from e
        # Let what the first screen started finish (the CatchUp the socket's ack sends
        # when the rows came first), so every POST has its resource timing entry.
        page.wait_for_timeout(settle_ms)
        deadline = time.monotonic() + timeout_ms / 1000
        posts = lambda: [r for r in requests if r.method == "POST" and urlsplit(r.url).path == "/graphql"]  # noqa: E731
        while time.monotonic() < deadline and any(r not in finished for r in posts()):
            page.wait_for_timeout(50)
        data = page.evaluate(COLLECT)
    finally:
        for ev, fn in handlers:
            page.remove_listener(ev, fn)
    if offhost:
        raise LoadError(f"requests beyond 127.0.0.1: {offhost}")
    if errors:
        raise LoadError(f"the page reported errors: {errors}")
    fs, nav = data["fs"], data["nav"]
    gql_entries = sorted((e for e in data["resources"]
                          if urlsplit(e["name"]).path == "/graphql" and e["initiatorType"] == "fetch"),
                         key=lambda e: e["startTime"])
    post_reqs = [r for r in requests if r.method == "POST" and urlsplit(r.url).path == "/graphql"]
    ops = [operation_name(r) for r in post_reqs]
    if len(gql_entries) != len(post_reqs):
        raise LoadError(f"{len(post_reqs)} POSTs to /graphql but {len(gql_entries)} resource entries")
    before = [op for op, e in zip(ops, gql_entries) if e["startTime"] < fs["rows"]]
    board = next((e for op, e in zip(ops, gql_entries) if op == "Board"), None)
    if board is None:
        raise LoadError(f"no Board query among {ops}")
    lcp = fs["lcp"][-1] if fs["lcp"] else None  # the last candidate: what Chromium reports as LCP
    kinds = {}
    for r in requests:
        kinds[r.resource_type] = kinds.get(r.resource_type, 0) + 1
    return {
        "nav_type": nav["type"],
        "responseEnd": nav["responseEnd"],
        "domContentLoadedEventEnd": nav["domContentLoadedEventEnd"],
        "loadEventEnd": nav["loadEventEnd"],
        "board_query_start": board["startTime"],
        "board_query_responseEnd": board["responseEnd"],
        "board_query_ms": board["responseEnd"] - board["startTime"],
        "rows": fs["rows"],
        "rows_frame": fs["rowsFrame"],
        "live_up": fs["live"],
        "fcp": data["paint"].get("first-contentful-paint"),
        "lcp": lcp["t"] if lcp else None,
        "lcp_element": lcp["el"] if lcp else None,
        "lcp_candidates": fs["lcp"],
        "row_count": fs["rowCount"],
        "posts_before_first_screen": len(before),
        "ops_before_first_screen": before,
        "posts_total": len(post_reqs),
        "ops_total": ops,
        "websockets": len(sockets),
        "socket_stalled": stall,
        "requests_by_type": kinds,
        "board_answer_bytes": board["decodedBodySize"],
        "board_answer_encoded_bytes": board["encodedBodySize"],
        "board_post_data": next((r.post_data for r in post_reqs if operation_name(r) == "Board"), None),
    }


def static_load(browser, url, viewport, timeout_ms):
    """A cold navigation to a trivial page of the same server: the baseline."""
    ctx = browser.new_context(viewport=viewport)
    try:
        page = ctx.new_page()
        seen = []
        page.on("request", lambda r: seen.append(r.url))
        page.goto(url, wait_until="load", timeout=timeout_ms)
        nav = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                            " return {responseEnd: n.responseEnd, domContentLoadedEventEnd: n.domContentLoadedEventEnd,"
                            " loadEventEnd: n.loadEventEnd}; }")
        if nav["loadEventEnd"] == 0:
            page.wait_for_function("() => performance.getEntriesByType('navigation')[0].loadEventEnd > 0",
                                   timeout=timeout_ms)
            nav = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                " return {responseEnd: n.responseEnd, domContentLoadedEventEnd: n.domContentLoadedEventEnd,"
                                " loadEventEnd: n.loadEventEnd}; }")
        bad = [u for u in seen if not host_ok(u)]
        if bad:
            raise LoadError(f"requests beyond 127.0.0.1: {bad}")
        return nav
    finally:
        ctx.close()


def quantile(xs, q):
    """Nearest-rank quantile (p90 of 10 values is the 9th)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "median": round(statistics.median(xs), 1), "p90": round(quantile(xs, 0.9), 1),
            "min": round(min(xs), 1), "max": round(max(xs), 1)}


TIMINGS = ["responseEnd", "domContentLoadedEventEnd", "loadEventEnd", "board_query_responseEnd",
           "board_query_ms", "rows", "rows_frame", "live_up", "fcp", "lcp"]


def summarise(loads):
    out = {k: stats([l[k] for l in loads]) for k in TIMINGS}
    out["row_count"] = sorted({l["row_count"] for l in loads})
    out["posts_before_first_screen"] = sorted({l["posts_before_first_screen"] for l in loads})
    out["ops_before_first_screen"] = sorted({",".join(l["ops_before_first_screen"]) for l in loads})
    out["posts_total"] = sorted({l["posts_total"] for l in loads})
    out["ops_total"] = sorted({",".join(o or "?" for o in l["ops_total"]) for l in loads})
    out["websockets"] = sorted({l["websockets"] for l in loads})
    out["lcp_element"] = sorted({str(l["lcp_element"]) for l in loads})
    return out


def fetch(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read(), dict(r.headers)


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and a.get("rel") == "stylesheet":
            self.urls.append(a["href"])
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])


def sizes(base, board_post_data):
    """Raw and gzip -9 bytes of the page, its script and style, and the Board answer."""
    out = {}
    page, headers = fetch(base + "/")
    out["index.html"] = page
    out["content-encoding"] = headers.get("Content-Encoding") or headers.get("content-encoding")
    p = Links()
    p.feed(page.decode())
    for u in p.urls:
        name = urlsplit(u).path.rsplit("/", 1)[-1]
        out[name] = fetch(urljoin(base + "/", u))[0]
    if board_post_data:
        out["Board answer"] = fetch(base + "/graphql", board_post_data.encode(),
                                    {"content-type": "application/json"})[0]
    table = {}
    for k, v in out.items():
        if isinstance(v, bytes):
            table[k] = {"raw": len(v), "gzip9": len(gzip.compress(v, compresslevel=9))}
    assets = [k for k in table if k != "Board answer"]
    table["page total (index + js + css)"] = {"raw": sum(table[k]["raw"] for k in assets),
                                              "gzip9": sum(table[k]["gzip9"] for k in assets)}
    table["server content-encoding"] = out["content-encoding"] or "none"
    return table


def markdown(label, summary, baseline, warm, size_table):
    rows = [("navigation responseEnd", "responseEnd"),
            ("DOMContentLoaded end", "domContentLoadedEventEnd"),
            ("load event end", "loadEventEnd"),
            ("Board query responseEnd", "board_query_responseEnd"),
            ("Board query duration (start to responseEnd)", "board_query_ms"),
            ("**rows in #rows (full first screen)**", "rows"),
            ("next frame after the rows", "rows_frame"),
            ("#live.up (socket acknowledged)", "live_up"),
            ("first contentful paint", "fcp"),
            ("largest contentful paint (" + ", ".join(summary.get("lcp_element") or []) + ")", "lcp")]
    lines = [f"**{label}**", "", "| ms since navigation start | median | p90 | max |" +
             (" warm median |" if warm else ""),
             "|---|---:|---:|---:|" + ("---:|" if warm else "")]
    for title, k in rows:
        s = summary.get(k)
        if not s:
            continue
        w = warm.get(k) if warm else None
        lines.append(f"| {title} | {s['median']:.0f} | {s['p90']:.0f} | {s['max']:.0f} |" +
                     ((f" {w['median']:.0f} |" if w else " - |") if warm else ""))
    if baseline:
        lines.append(f"| baseline: cold load of {baseline['path']} (loadEventEnd) | "
                     f"{baseline['loadEventEnd']['median']:.0f} | {baseline['loadEventEnd']['p90']:.0f} | "
                     f"{baseline['loadEventEnd']['max']:.0f} |" + (" |" if warm else ""))
        lines.append("")
        lines.append(f"Full first screen / baseline (medians): {baseline['ratio_rows']:.1f}x")
    lines.append("")
    lines.append(f"Rows on the first screen: {summary['row_count']}; POSTs to /graphql before it: "
                 f"{summary['posts_before_first_screen']} ({summary['ops_before_first_screen']}); "
                 f"all POSTs until settled: {summary['ops_total']}; WebSockets: {summary['websockets']}.")
    if size_table:
        lines += ["", "| bytes | raw | gzip -9 |", "|---|---:|---:|"]
        for k, v in size_table.items():
            if isinstance(v, dict):
                lines.append(f"| {k} | {v['raw']:,} | {v['gzip9']:,} |")
        lines.append(f"| server's Content-Encoding | {size_table['server content-encoding']} | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="the server, e.g. http://127.0.0.1:8080 (must be 127.0.0.1)")
    ap.add_argument("--cold", type=int, default=10, help="cold loads, each in a new context (10)")
    ap.add_argument("--warm", type=int, default=0, help="reloads after each cold load, same context (0)")
    ap.add_argument("--discard", type=int, default=1,
                    help="cold loads first, not counted: the browser process's own start-up (1)")
    ap.add_argument("--baseline", default="/healthz",
                    help="a trivial page of the same server, loaded cold before each board load ('' for none)")
    ap.add_argument("--viewport", default="1280x800", help="WIDTHxHEIGHT (1280x800)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds per load (30)")
    ap.add_argument("--settle-ms", type=int, default=300, help="wait after the first screen (300)")
    ap.add_argument("--label", default=None, help="name of this run in the Markdown")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    ap.add_argument("--out", help="write the JSON summary (and every load) there too")
    ap.add_argument("--stall-socket", action="store_true",
                    help="answer /graphql/ws in the browser (Playwright's route_web_socket) and never acknowledge it:"
                         " what the board does behind a proxy that holds WebSockets")
    ap.add_argument("--chromium", default=CHROMIUM)
    args = ap.parse_args()

    base = args.base.rstrip("/")
    if urlsplit(base).hostname not in ALLOWED_HOSTS:
        ap.error("the server must be at 127.0.0.1 (nothing may leave this machine)")
    w, _, h = args.viewport.partition("x")
    viewport = {"width": int(w), "height": int(h)}
    timeout_ms = args.timeout * 1000

    from playwright.sync_api import sync_playwright

    cold, warm, base_loads, discarded = [], [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
        try:
            for i in range(args.discard + args.cold):
                counted = i >= args.discard
                if args.baseline and counted:
                    base_loads.append(static_load(browser, base + args.baseline, viewport, timeout_ms))
                ctx = browser.new_context(viewport=viewport)
                ctx.add_init_script(INIT_SCRIPT)
                if args.stall_socket:
                    ctx.route_web_socket("**/graphql/ws", lambda ws: None)  # opens, never answers
                try:
                    page = ctx.new_page()
                    load = board_load(page, base + "/", timeout_ms, args.settle_ms, stall=args.stall_socket)
                    (cold if counted else discarded).append(load)
                    print(f"{'cold' if counted else 'discarded'} {i + 1 - args.discard if counted else i + 1}: "
                          f"rows {load['rows']:.0f} ms ({load['row_count']} rows), Board answer "
                          f"{load['board_query_responseEnd']:.0f} ms, live {load['live_up'] or 0:.0f} ms, "
                          f"load {load['loadEventEnd']:.0f} ms, POSTs before {load['ops_before_first_screen']}, "
                          f"all {load['ops_total']}, sockets {load['websockets']}"
                          + (f"; baseline {base_loads[-1]['loadEventEnd']:.0f} ms" if counted and args.baseline else ""),
                          file=sys.stderr)
                    if counted:
                        for _ in range(args.warm):
                            wl = board_load(page, base + "/", timeout_ms, args.settle_ms, reload=True,
                                            stall=args.stall_socket)
                            warm.append(wl)
                            print(f"  warm: rows {wl['rows']:.0f} ms, Board answer {wl['board_query_responseEnd']:.0f} ms",
                                  file=sys.stderr)
                finally:
                    ctx.close()
        finally:
            browser.close()

    post_data = cold[0]["board_post_data"] if cold else None
    summary = {
        "base": base,
        "stall_socket": args.stall_socket,
        "label": args.label,
        "viewport": args.viewport,
        "chromium_flags": FLAGS,
        "cold": summarise(cold),
        "warm": summarise(warm) if warm else None,
        "baseline": None,
        "sizes": sizes(base, post_data),
        "board_variables": json.loads(post_data)["variables"] if post_data else None,
    }
    if base_loads:
        b = {k: stats([x[k] for x in base_loads]) for k in ("responseEnd", "loadEventEnd")}
        b["path"] = args.baseline
        b["ratio_rows"] = round(summary["cold"]["rows"]["median"] / b["loadEventEnd"]["median"], 2) \
            if b["loadEventEnd"]["median"] else None
        summary["baseline"] = b
    summary["under_1s"] = {"rows_median": summary["cold"]["rows"]["median"] < 1000,
                           "rows_max": summary["cold"]["rows"]["max"] < 1000}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({**summary, "loads": {"cold": cold, "warm": warm, "baseline": base_loads,
                                            "discarded": discarded}}, f, indent=2)
    print(json.dumps(summary, indent=2))
    if args.markdown:
        print()
        print(markdown(args.label or base, summary["cold"], summary["baseline"], summary["warm"], summary["sizes"]))
    # One query and one socket (a socket routed by --stall-socket is not reported).
    ok = all(l["posts_before_first_screen"] == 1 and l["websockets"] == (0 if args.stall_socket else 1)
             for l in cold)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
