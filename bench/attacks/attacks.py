"""Before/after figures for the attacks of issue 21, against one server binary:
    .venv-blackbox/bin/python bench/attacks/attacks.py target/release/buildsets-graphql [item ...]
Run it for two binaries (an old and a new build) in the same session and compare;
each item prints one line: what was sent, then resident memory (RSS), the server's
CPU (utime + stime from /proc) and latencies. Items: storage hosts bomb subs cache
pongs h2 readers (all by default). Figures move with the machine: compare ratios."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "blackbox"))

import httpx  # noqa: E402

import conftest  # noqa: E402

conftest.BIN = os.path.abspath(sys.argv[1])
from test_memory import rss_mib  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def server(*flags):
    return conftest.Server("sqlite", flags)


def report(item, **figures):
    print(item + ": " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)


def item_storage():
    d = tempfile.mkdtemp()
    port = conftest.free_port()
    p = subprocess.Popen([conftest.BIN, "--database-url", f"sqlite://{d}/b.db?mode=rwc", "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))
    time.sleep(1.5)
    c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    q = lambda s, v=None: c.post("/graphql", json={"query": s, "variables": v}).json()  # noqa: E731
    q('mutation { ensureBuilder(name: "x") { builderid } }')
    add = 'mutation($n: String!) { addBuildset(input: {reason: $n, sourcestamps: [{stamp: {branch: $n}}], builderids: [1]}) { bsid } }'
    acked, codes = [], []
    for n in range(12):
        if n == 3:
            subprocess.run(["prlimit", "--pid", str(p.pid), "--fsize=4096:unlimited"], check=True)
        if n == 9:
            subprocess.run(["prlimit", "--pid", str(p.pid), "--fsize=unlimited:unlimited"], check=True)
        t0 = time.monotonic()
        r = q(add, {"n": f"b{n}"})
        if "errors" in r:
            codes.append(r["errors"][0]["extensions"]["code"])
        else:
            acked.append(r["data"]["addBuildset"]["bsid"])
        last = time.monotonic() - t0
    p.terminate()
    p.wait()
    import sqlite3
    stored = [r[0] for r in sqlite3.connect(f"{d}/b.db").execute("SELECT id FROM buildsets")]
    report("storage (12 adds, writes failing for adds 4-9)", acknowledged=len(acked),
           stored_after_restart=len(stored), lost=len(set(acked) - set(stored)),
           refusal_codes="/".join(sorted(set(codes))) or "-", last_add_ms=round(last * 1000, 1))


def item_hosts():
    s = server()
    r = httpx.post(s.base + "/graphql", content=json.dumps({"query": 'mutation { ensureBuilder(name: "rebound") { builderid } }'}),
                   headers={"content-type": "application/json", "host": f"evil.example:{s.port}", "origin": f"http://evil.example:{s.port}"})
    ran = bool(s.ok("{ builders { name } }")["builders"])
    report("hosts (rebound POST mutation)", status=r.status_code, mutation_ran=ran)
    s.stop()


def bomb_query():
    q = "fragment F0 on Query { __typename }"
    for i in range(1, 12):
        q += f" fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} ...F{i - 1} ...F{i - 1} }}"
    return "query Q { ...F11 } query R { __typename } " + q


def item_bomb():
    s = server()
    body = json.dumps({"query": bomb_query(), "operationName": "R"})
    c0, t0 = cpu_s(s.proc.pid), time.monotonic()
    httpx.post(s.base + "/graphql", content=body, headers={"content-type": "application/json"}, timeout=120)
    one_cpu, one_wall = cpu_s(s.proc.pid) - c0, time.monotonic() - t0
    worst = []
    threads = [threading.Thread(target=lambda: httpx.post(s.base + "/graphql", content=body, headers={"content-type": "application/json"}, timeout=120)) for _ in range(2)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        t1 = time.monotonic()
        httpx.get(s.base + "/healthz", timeout=60)
        worst.append(time.monotonic() - t1)
    for t in threads:
        t.join()
    report("bomb (4^11 spreads outside the selected operation, 1.1 kB)", cpu_s_per_request=round(one_cpu, 3),
           wall_s=round(one_wall, 3), healthz_worst_ms_two_at_once=round(max(worst) * 1000, 1))
    s.stop()


async def _subs(s, query, sockets, per_socket):
    import websockets
    conns = []
    for _ in range(sockets):
        ws = await websockets.connect(s.base.replace("http", "ws") + "/graphql/ws", subprotocols=["graphql-transport-ws"],
                                      open_timeout=30, max_size=None)
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        for j in range(per_socket):
            await ws.send(json.dumps({"id": str(j), "type": "subscribe", "payload": {"query": query}}))
        conns.append(ws)
    await asyncio.sleep(2)
    got = [0]

    async def read(ws):
        try:
            while True:
                m = json.loads(await ws.recv())
                errors = m.get("payload", {}).get("errors") if m.get("type") == "next" else m.get("payload")
                if m.get("type") in ("next", "error") and errors:
                    if len(got) == 1:
                        got.append(errors[0]["message"][:70])
                elif m.get("type") == "next":
                    got[0] += 1
        except Exception:
            pass
    readers = [asyncio.create_task(read(ws)) for ws in conns]
    await asyncio.sleep(0.5)
    rss = rss_mib(s.proc.pid)
    c0, t0 = cpu_s(s.proc.pid), time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, lambda: s.ok(
        'mutation { addBuildset(input: {reason: "ev", sourcestamps: [{stamp: {branch: "e"}}], builderids: []}) { bsid } }'))
    want = sockets * per_socket if len(got) == 1 else 0
    while got[0] < want and time.monotonic() - t0 < 300:
        await asyncio.sleep(0.05)
    took, cpu = time.monotonic() - t0, cpu_s(s.proc.pid) - c0
    for r in readers:
        r.cancel()
    for ws in conns:
        await ws.close()
    return rss, cpu, took, got


def item_subs():
    # 499 aliases and the root field: at --max-subscription-selections (500).
    for aliases, sockets, per in [(9000, 1, 50), (499, 1, 50), (499, 3, 100), (499, 10, 100)]:
        s = server("--max-subscriptions-per-connection", "100")
        base = rss_mib(s.proc.pid)
        q = "subscription { buildsetAdded { %s } }" % " ".join(f"a{i}: bsid" for i in range(aliases))
        rss, cpu, took, got = asyncio.run(_subs(s, q, sockets, per))
        n = sockets * per
        report(f"subs ({n} identical subscriptions of {aliases} aliases)", accepted_events=got[0],
               refused=(got[1] if len(got) > 1 else "-"), rss_mib_per_subscription=round((rss - base) / n, 3),
               cpu_s_per_event=round(cpu, 3), delivery_s=round(took, 2))
        s.stop()


def item_cache():
    """Each workload on a fresh server, so that one's freed memory does not hide the next's."""
    def fresh():
        s = server()
        c = httpx.Client(base_url=s.base, timeout=60)
        for _ in range(50):
            c.post("/graphql", json={"query": "{ __typename }"})
        return s, c, rss_mib(s.proc.pid)

    def post(c, body):
        return c.post("/graphql", content=json.dumps(body), headers={"content-type": "application/json"})

    s, c, r0 = fresh()
    for i in range(100):
        post(c, {"query": "{ __typename }", "operationName": f"{i:04d}" + "N" * 1_000_000})
    names = rss_mib(s.proc.pid) - r0
    s.stop()
    s, c, r0 = fresh()
    for i in range(5):
        post(c, {"query": "{ buildsets(where: {bsid: {in: [" + "1," * 500_000 + f"{i}]}}}}) {{ totalCount }} }}"})
    dense = rss_mib(s.proc.pid) - r0
    s.stop()
    s, c, r0 = fresh()

    def work(k):
        with httpx.Client(base_url=s.base, timeout=60) as cl:
            for i in range(k, 100_000, 8):
                cl.post("/graphql", content=json.dumps({"query": "{ a%d: __typename }" % i}), headers={"content-type": "application/json"})
    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    small = rss_mib(s.proc.pid) - r0
    s.stop()
    report("cache (each on a fresh server)", rss_mib_after_100_1MB_names=f"+{names:.1f}",
           after_5_dense_1MB_documents=f"+{dense:.1f}", after_100000_distinct_queries=f"+{small:.1f}")


def item_pongs():
    from test_slow_peers import ping_flood
    s = server()
    r0 = rss_mib(s.proc.pid)
    t0 = time.monotonic()
    sock, sent = ping_flood(s, limit=124_000_000, seconds=30)
    report("pongs (pings before connection_init, nothing read)", sent_mb=round(sent / 1e6), seconds=round(time.monotonic() - t0, 1),
           rss_mib=f"+{rss_mib(s.proc.pid) - r0:.1f}")
    sock.close()
    s.stop()


def item_h2():
    from test_slow_peers import unfinished_bodies
    s = server("--client-timeout", "8")
    r0 = rss_mib(s.proc.pid)
    opened, _, sent = unfinished_bodies(s)
    report("h2 (unfinished 1 MB bodies on one connection)", streams_open=len(opened), body_mb_sent=round(sent / 1e6, 1),
           rss_mib=f"+{rss_mib(s.proc.pid) - r0:.1f}")
    s.stop()


def item_readers():
    from test_slow_peers import big_answer_query, raw_post
    s = server("--max-connections", "6", "--client-timeout", "2")
    q = big_answer_query(s)
    s.http.close()
    r0 = rss_mib(s.proc.pid)
    stuck = [raw_post(s, q) for _ in range(6)]
    time.sleep(1)
    t0, served = time.monotonic(), None
    while time.monotonic() - t0 < 12:
        try:
            with socket.create_connection(("127.0.0.1", s.port), timeout=2) as c:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if c.recv(100).startswith(b"HTTP/1.1 200"):
                    served = time.monotonic() - t0
                    break
        except OSError:
            pass
        time.sleep(0.2)
    report("readers (6 unread 24 MB answers, --max-connections 6, --client-timeout 2)",
           new_client_served_after_s=(round(served, 1) if served is not None else "never (12 s)"),
           rss_mib=f"+{rss_mib(s.proc.pid) - r0:.1f}")
    for c in stuck:
        c.close()
    s.stop()


if __name__ == "__main__":
    items = sys.argv[2:] or ["storage", "hosts", "bomb", "subs", "cache", "pongs", "h2", "readers"]
    for name in items:
        try:
            globals()["item_" + name]()
        except Exception as e:  # an old binary may refuse a flag or fall over
            report(name, failed=repr(e)[:200])
