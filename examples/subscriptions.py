"""Event latency and memory for subscriptions, from outside (websockets + httpx).

Opens --sockets × --per-socket `buildsetAdded` subscriptions on the server at --sub,
writes --events buildsets through the server at --write (the same one by default),
one at a time, and reports the time from each mutation's response to the event's
arrival on every subscription (median and max), and the subscribing server's RSS
before and after the subscriptions opened (--pid).

  .venv-blackbox/bin/python examples/subscriptions.py --sub http://127.0.0.1:8080 \
      --sockets 10 --per-socket 100 --events 50 --pid "$(pgrep -f 'release/buildsets-graphql')"

Same instance: --write omitted. Cross instance: a second server on the same
database as --write. Poller only: a database without NOTIFY (SQLite, MariaDB), or a
writer that is not this server (plain SQL, Buildbot).
"""

import argparse
import asyncio
import json
import random
import statistics
import time

import httpx
import websockets


def rss_kib(pid):
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as f:
        return {line.split(":")[0]: line.split()[1] for line in f if line.startswith(("VmRSS", "VmHWM"))}


async def main(args):
    write = args.write or args.sub
    before = rss_kib(args.pid)
    http = httpx.Client(base_url=write, timeout=30)

    def gql(query, variables=None):
        r = http.post("/graphql", json={"query": query, "variables": variables or {}})
        body = r.json()
        assert "errors" not in body, body
        return body["data"]

    builder = gql('mutation { ensureBuilder(name: "latency") { builderid } }')["ensureBuilder"]["builderid"]
    arrivals = {}
    sockets = []

    async def reader(ws):
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "next":
                bsid = msg["payload"]["data"]["buildsetAdded"]["bsid"]
                arrivals.setdefault(bsid, []).append(time.monotonic())

    url = args.sub.replace("http", "ws") + "/graphql/ws"
    tasks = []
    for s in range(args.sockets):
        ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"], max_size=None)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for i in range(args.per_socket):
            await ws.send(json.dumps({"id": str(i), "type": "subscribe", "payload": {
                "query": "subscription { buildsetAdded { bsid reason sourcestamps { branch } properties { name value } } }"}}))
        sockets.append(ws)
        tasks.append(asyncio.create_task(reader(ws)))
    await asyncio.sleep(2)
    during = rss_kib(args.pid)
    total = args.sockets * args.per_socket
    latencies = []
    loop = asyncio.get_running_loop()
    for e in range(args.events):
        inp = {"reason": f"latency {e}", "sourcestamps": [{"stamp": {"branch": "main"}}],
               "builderids": [builder], "properties": [{"name": "n", "value": e, "source": "bench"}]}
        data = await loop.run_in_executor(None, lambda: gql(
            "mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }", {"in": inp}))
        sent = time.monotonic()
        bsid = data["addBuildset"]["bsid"]
        deadline = sent + 10
        while len(arrivals.get(bsid, [])) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        got = arrivals.get(bsid, [])
        assert len(got) == total, f"bsid {bsid}: {len(got)} of {total} events"
        latencies.append((min(got) - sent, max(got) - sent))
        # Random gaps, so that writes do not keep one phase against the poll interval.
        await asyncio.sleep(random.uniform(0, 2 * args.gap))
    after = rss_kib(args.pid)
    first = [a for a, _ in latencies]
    last = [b for _, b in latencies]
    print(f"subscriptions: {total} on {args.sockets} sockets; events: {args.events}")
    print(f"first subscriber: median {statistics.median(first) * 1000:.1f} ms, max {max(first) * 1000:.1f} ms")
    print(f"last subscriber:  median {statistics.median(last) * 1000:.1f} ms, max {max(last) * 1000:.1f} ms")
    if before:
        print(f"server RSS: {before['VmRSS']} KiB before, {during['VmRSS']} KiB with the subscriptions open, "
              f"{after['VmRSS']} KiB after the events (peak {after['VmHWM']} KiB)")
    for ws in sockets:
        await ws.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sub", default="http://127.0.0.1:8080", help="the server subscribed to")
    p.add_argument("--write", help="the server written through (default: --sub)")
    p.add_argument("--sockets", type=int, default=10)
    p.add_argument("--per-socket", type=int, default=100)
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--gap", type=float, default=0.05, help="mean seconds between two writes (uniformly random)")
    p.add_argument("--pid", type=int, help="the subscribed server's pid, for its RSS")
    asyncio.run(main(p.parse_args()))
