"""Load driver for Buildbot 4.3's REST API (/api/v2): scenario units per second and the
p50/p99 latency of one unit, over C keep-alive connections (one thread each, stdlib
http.client: no extra dependency, and little client CPU next to the master).

A unit fetches what the matching GraphQL query of this repository fetches:

  a   one buildset by id (random, in [min bsid, max bsid]) with its sourcestamps and their
      patches: GET /api/v2/buildsets/{bsid}                                    (1 request)
      Buildbot embeds the sourcestamps, each with its patch (patchid, level, subdir,
      author, comment; the body comes out null: REST has no way to serve it, see README).
  b   the 100 newest buildsets with their sourcestamps and patches:
      GET /api/v2/buildsets?order=-bsid&limit=100                              (1 request)
  c   the 20 newest buildsets with their sourcestamps and their build requests:
      GET /api/v2/buildsets?order=-bsid&limit=20, then for each of the 20
      GET /api/v2/buildrequests?buildsetid={bsid}                            (21 requests)
      (the endpoint takes one buildsetid only: several values are cut to the first)
  c1  as c, with the 20 request lists in one call, a trick a client could use because
      the 20 newest ids are exactly those in [min, max]:
      GET /api/v2/buildrequests?buildsetid__ge={min}&buildsetid__le={max}     (2 requests)
  e   the 50 most recent buildsets having a sourcestamp on --branch: the REST API has no
      such filter, so page newest first and keep matches client-side until 50:
      GET /api/v2/buildsets?order=-bsid&limit={--page}[&bsid__lt={last bsid seen}]
      (keyset paging, as many pages as needed; requests_per_unit is the mean)

Every unit's answer is checked (right ids, counts, sourcestamps present, request lists
belong to their buildset, branch matches); a failed check counts as an error, not a unit.
--verify DB_URL additionally compares one unit of each scenario with the database itself.

Prints one JSON line: {"scenario", "units_per_s", "p50_ms", "p99_ms", "requests_per_unit", ...}.
"""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, base, timeout):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.conn = None
        self.requests = 0

    def get(self, path):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("GET", self.prefix + path, headers={"Accept": "application/json"})
                resp = self.conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            self.requests += 1
            if resp.status != 200:
                raise CheckFailed(f"GET {path}: HTTP {resp.status} {body[:200]!r}")
            return json.loads(body)


def stamps_ok(bs):
    ss = bs.get("sourcestamps")
    check(isinstance(ss, list) and len(ss) >= 1, f"buildset {bs.get('bsid')} has no sourcestamps")
    for s in ss:
        check("patch" in s and "ssid" in s and "branch" in s, f"buildset {bs['bsid']}: incomplete sourcestamp")


def unit_a(cl, ctx, rng):
    bsid = rng.randint(ctx["min_bsid"], ctx["max_bsid"])
    out = cl.get(f"/api/v2/buildsets/{bsid}")["buildsets"]
    check(len(out) == 1 and out[0]["bsid"] == bsid, f"buildset {bsid} not returned")
    stamps_ok(out[0])
    return out


def newest(cl, n):
    out = cl.get(f"/api/v2/buildsets?order=-bsid&limit={n}")["buildsets"]
    check(len(out) == n, f"{len(out)} buildsets instead of {n}")
    ids = [b["bsid"] for b in out]
    check(ids == sorted(ids, reverse=True), "buildsets not newest first")
    for b in out:
        stamps_ok(b)
    return out


def unit_b(cl, ctx, rng):
    return newest(cl, 100)


def unit_c(cl, ctx, rng):
    out = newest(cl, 20)
    reqs = {}
    for b in out:
        brs = cl.get(f"/api/v2/buildrequests?buildsetid={b['bsid']}")["buildrequests"]
        check(brs and all(r["buildsetid"] == b["bsid"] for r in brs), f"buildrequests of {b['bsid']}")
        reqs[b["bsid"]] = brs
    return out, reqs


def unit_c1(cl, ctx, rng):
    out = newest(cl, 20)
    ids = [b["bsid"] for b in out]
    brs = cl.get(f"/api/v2/buildrequests?buildsetid__ge={min(ids)}&buildsetid__le={max(ids)}")["buildrequests"]
    reqs = {i: [] for i in ids}
    for r in brs:
        check(r["buildsetid"] in reqs, f"buildrequest {r['buildrequestid']} of another buildset")
        reqs[r["buildsetid"]].append(r)
    check(all(reqs.values()), "a buildset without buildrequests")
    return out, reqs


def unit_e(cl, ctx, rng):
    branch, page, want = ctx["branch"], ctx["page"], 50
    found, last = [], None
    while len(found) < want:
        path = f"/api/v2/buildsets?order=-bsid&limit={page}"
        if last is not None:
            path += f"&bsid__lt={last}"
        chunk = cl.get(path)["buildsets"]
        for b in chunk:
            if any(s["branch"] == branch for s in b["sourcestamps"]):
                found.append(b)
                if len(found) == want:
                    break
        if len(chunk) < page:
            break
        last = chunk[-1]["bsid"]
    check(len(found) == want, f"only {len(found)} buildsets on {branch}")
    return found


SCENARIOS = {"a": unit_a, "b": unit_b, "c": unit_c, "c1": unit_c1, "e": unit_e}


def context(base, args):
    cl = Client(base, args.timeout)
    first = cl.get("/api/v2/buildsets?order=bsid&limit=1&field=bsid")["buildsets"]
    last = cl.get("/api/v2/buildsets?order=-bsid&limit=1&field=bsid")["buildsets"]
    if not first:
        raise SystemExit("no buildsets: seed the database first (seed.py)")
    return {"min_bsid": first[0]["bsid"], "max_bsid": last[0]["bsid"], "branch": args.branch, "page": args.page}


from bbconn import percentile  # noqa: E402


def verify(args, ctx):
    """One unit of each scenario against the database (SQL through SQLAlchemy)."""
    import sqlalchemy as sa
    from bbconn import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(args.verify))
    cl = Client(args.base, args.timeout)
    rng = random.Random(1)
    report = {}
    with engine.connect() as conn:
        def stamps(bsid):
            rows = conn.execute(sa.text(
                "SELECT s.id, s.branch, s.revision, s.repository, s.codebase, s.project, "
                "p.id, p.patchlevel, p.patch_author, p.patch_comment, p.subdir "
                "FROM buildset_sourcestamps b JOIN sourcestamps s ON s.id = b.sourcestampid "
                "LEFT JOIN patches p ON p.id = s.patchid WHERE b.buildsetid = :b"), {"b": bsid}).fetchall()
            return sorted([list(r) for r in rows])

        def api_stamps(bs):
            out = []
            for s in bs["sourcestamps"]:
                p = s["patch"]
                out.append([s["ssid"], s["branch"], s["revision"], s["repository"], s["codebase"], s["project"]]
                           + ([p["patchid"], p["level"], p["author"], p["comment"], p["subdir"]] if p
                              else [None] * 5))
            return sorted(out)

        def requests(bsid):
            rows = conn.execute(sa.text("SELECT id, builderid, complete, results FROM buildrequests "
                                        "WHERE buildsetid = :b"), {"b": bsid}).fetchall()
            return sorted([list(r) for r in rows])

        def api_requests(brs):
            return sorted([[r["buildrequestid"], r["builderid"], int(r["complete"]), r["results"]] for r in brs])

        def newest_ids(n):
            return [r[0] for r in conn.execute(sa.text(
                "SELECT id FROM buildsets ORDER BY id DESC LIMIT :n"), {"n": n})]

        def compare_buildsets(name, got, ids):
            bad = []
            if [b["bsid"] for b in got] != ids:
                bad.append("bsids differ")
            for b in got:
                if api_stamps(b) != stamps(b["bsid"]):
                    bad.append(f"sourcestamps of {b['bsid']}")
            patched = sum(1 for b in got for s in b["sourcestamps"] if s["patch"])
            bodies = sum(1 for b in got for s in b["sourcestamps"] if s["patch"] and s["patch"]["body"] is not None)
            report[name] = {"buildsets": len(got), "stamps": sum(len(b["sourcestamps"]) for b in got),
                            "patches": patched, "patch_bodies_served": bodies, "mismatches": bad}
            return bad

        got = [unit_a(cl, ctx, rng)[0] for _ in range(50)]
        compare_buildsets("a", got, [b["bsid"] for b in got])
        compare_buildsets("b", unit_b(cl, ctx, rng), newest_ids(100))
        for name in ("c", "c1"):
            got, reqs = SCENARIOS[name](cl, ctx, rng)
            compare_buildsets(name, got, newest_ids(20))
            for bsid, brs in reqs.items():
                if api_requests(brs) != requests(bsid):
                    report[name]["mismatches"].append(f"buildrequests of {bsid}")
            report[name]["buildrequests"] = sum(len(v) for v in reqs.values())
        ids = [r[0] for r in conn.execute(sa.text(
            "SELECT id FROM buildsets bs WHERE EXISTS (SELECT 1 FROM buildset_sourcestamps b JOIN sourcestamps s "
            "ON s.id = b.sourcestampid WHERE b.buildsetid = bs.id AND s.branch = :br) ORDER BY id DESC LIMIT 50"),
            {"br": args.branch})]
        before = cl.requests
        compare_buildsets("e", unit_e(cl, ctx, rng), ids)
        report["e"]["requests"] = cl.requests - before
    engine.dispose()
    ok = all(not r["mismatches"] for r in report.values())
    print(json.dumps({"verify": "ok" if ok else "MISMATCH", "branch": args.branch, "scenarios": report}))
    return ok


def main():
    p = argparse.ArgumentParser(
        description="Drive Buildbot's REST API (/api/v2) with one scenario for S seconds over C connections; "
                    "prints units/s, p50/p99 unit latency and requests per unit as one JSON line.",
        epilog="Scenarios: a (one buildset by id), b (100 newest), c (20 newest + their buildrequests, "
               "one call each), c1 (c with one range call), e (50 newest on --branch, paged client-side).")
    p.add_argument("--base", required=True, help="master URL, e.g. http://127.0.0.1:8010")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), help="required unless --verify")
    p.add_argument("--seconds", type=float, default=10, help="measured duration (default 10)")
    p.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    p.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first (default 2)")
    p.add_argument("--branch", default="main", help="branch of scenario e (default main)")
    p.add_argument("--page", type=int, default=100, help="page size of scenario e (default 100)")
    p.add_argument("--timeout", type=float, default=60, help="per-request timeout in seconds")
    p.add_argument("--seed", type=int, default=1, help="random seed for scenario a's ids")
    p.add_argument("--verify", metavar="DB_URL", default=None,
                   help="instead of measuring, check one unit of every scenario against this database")
    args = p.parse_args()
    args.base = args.base.rstrip("/")

    if not args.scenario and not args.verify:
        p.error("--scenario is required")
    ctx = context(args.base, args)
    if args.verify:
        raise SystemExit(0 if verify(args, ctx) else 1)

    unit = SCENARIOS[args.scenario]
    lock = threading.Lock()
    latencies, errors, requests = [], [], [0]
    start_gate = threading.Barrier(args.connections + 1)

    def run(idx, warm_end, end):
        cl = Client(args.base, args.timeout)
        rng = random.Random(args.seed * 1000 + idx)
        start_gate.wait()
        mine, errs, reqs = [], [], 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            measured = now >= warm_end
            before = cl.requests
            t0 = time.perf_counter()
            try:
                unit(cl, ctx, rng)
                dt = time.perf_counter() - t0
                if measured:
                    mine.append(dt)
                    reqs += cl.requests - before
            except Exception as e:  # noqa: BLE001 - any failure is an error of this unit
                if measured:
                    errs.append(f"{type(e).__name__}: {e}")
                if cl.conn is not None:
                    cl.conn.close()
                    cl.conn = None
        with lock:
            latencies.extend(mine)
            errors.extend(errs)
            requests[0] += reqs

    t_begin = time.monotonic() + 0.2
    warm_end = t_begin + args.warmup
    end = warm_end + args.seconds
    threads = [threading.Thread(target=run, args=(i, warm_end, end), daemon=True) for i in range(args.connections)]
    for t in threads:
        t.start()
    start_gate.wait()
    for t in threads:
        t.join()
    # Units that started before `end` may finish after it: count the time they took.
    elapsed = max(time.monotonic(), end) - warm_end
    latencies.sort()
    n = len(latencies)
    out = {
        "scenario": args.scenario,
        "units_per_s": round(n / elapsed, 2) if elapsed > 0 else None,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if n else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if n else None,
        "requests_per_unit": round(requests[0] / n, 2) if n else None,
        "units": n,
        "errors": len(errors),
        "seconds": round(elapsed, 2),
        "connections": args.connections,
    }
    if args.scenario == "e":
        out["branch"] = args.branch
        out["page"] = args.page
    if errors:
        out["first_error"] = errors[0][:300]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
