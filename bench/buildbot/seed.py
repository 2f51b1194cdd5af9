"""Fill a database with N realistic buildsets through Buildbot 4.3's own connector.

Creates Buildbot's schema when absent (db.model.upgrade, as `buildbot upgrade-master`
does; an existing schema and its rows are kept), then writes N buildsets with
db.buildsets.addBuildset, several in flight at once, and completes half of them.

Shape (the same for a given --seed; only timestamps and, within the in-flight window,
the order in which ids are handed out may differ between runs):
  * 10 builders, builder-0 .. builder-9 (db.builders.findBuilderId); 1-4 per buildset;
  * 1-3 sourcestamps per buildset, each on a different one of 3 repositories (its
    codebase), on one of 5 branches, revision a random 40-hex sha; about 1 stamp in 10
    carries a small patch (patch_body bytes, patch_level 1, author, comment);
  * 2-5 properties of mixed JSON types (int, float, str, bool, list, dict) with sources;
  * reason "scheduler NAME"; submitted_at one minute apart;
  * exactly half (a seeded random choice) completed with results 0-4: their build
    requests through db.buildrequests.completeBuildRequests (as a finished build does;
    --leave-requests-open skips that), then db.buildsets.completeBuildset.

Prints one JSON line at the end: {"buildsets": N, "seconds": ..., ...}.
"""

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sqlalchemy as sa  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from buildbot.util import epoch2datetime  # noqa: E402

from bbconn import connect, sqlalchemy_url  # noqa: E402

BUILDERS = [f"builder-{i}" for i in range(10)]
BRANCHES = ["main", "release/2.x", "release/3.x", "feature/cache", "feature/login"]
REPOSITORIES = [
    ("https://git.example.org/acme/core.git", "core"),
    ("https://git.example.org/acme/web.git", "web"),
    ("https://git.example.org/acme/docs.git", "docs"),
]
SCHEDULERS = ["on-push", "nightly", "release", "try", "force"]
AUTHORS = ["alice", "bob", "carol", "dave", "erin"]


def make_property(rng, name):
    """(value, source) of one property: each name has its own JSON type."""
    if name == "owner":
        return (f"{rng.choice(AUTHORS)}@example.org", "Force Build Form")
    if name == "retries":
        return (rng.randint(0, 5), "Scheduler")
    if name == "timeout_factor":
        return (round(rng.uniform(0.5, 4.0), 3), "Scheduler")
    if name == "clean":
        return (rng.random() < 0.5, "Force Build Form")
    if name == "targets":
        return ([rng.choice(["all", "lint", "test", "docs", "package"]) for _ in range(rng.randint(1, 4))],
                "Scheduler")
    if name == "env":
        return ({"CC": rng.choice(["gcc", "clang"]), "JOBS": rng.randint(1, 16),
                 "FLAGS": ["-O2", "-g"] if rng.random() < 0.5 else [], "ccache": rng.random() < 0.5},
                "Builder")
    if name == "scheduler":
        return (rng.choice(SCHEDULERS), "Scheduler")
    if name == "event":
        return ({"kind": rng.choice(["push", "tag", "pr"]), "number": rng.randint(1, 5000),
                 "draft": rng.random() < 0.2, "score": round(rng.random(), 4)}, "Change")
    raise KeyError(name)


PROPERTY_NAMES = ["owner", "retries", "timeout_factor", "clean", "targets", "env", "scheduler", "event"]


def make_patch(rng, k):
    path = f"src/module{k % 17}/file{k % 5}.c"
    body = (f"--- a/{path}\n+++ b/{path}\n@@ -{k % 40 + 1},2 +{k % 40 + 1},2 @@\n"
            f"-    int x = {k % 100};\n+    int x = {k % 100 + 1};\n     return x;\n").encode()
    return {
        "patch_body": body,
        "patch_level": 1,
        "patch_author": rng.choice(AUTHORS),
        "patch_comment": f"try: bump x in {path}",
    }


def make_specs(n, seed):
    """Everything about N buildsets, drawn up front from one seeded generator."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        stamps = []
        for repo, codebase in rng.sample(REPOSITORIES, rng.randint(1, 3)):
            ss = {
                "branch": rng.choice(BRANCHES),
                "revision": "%040x" % rng.getrandbits(160),
                "repository": repo,
                "project": "acme",
                "codebase": codebase,
            }
            if rng.random() < 0.1:
                ss.update(make_patch(rng, rng.getrandbits(20)))
            stamps.append(ss)
        names = rng.sample(PROPERTY_NAMES, rng.randint(2, 5))
        specs.append({
            "sourcestamps": stamps,
            "reason": f"scheduler {rng.choice(SCHEDULERS)}",
            "properties": {name: make_property(rng, name) for name in names},
            "builders": rng.sample(BUILDERS, rng.randint(1, 4)),
            "results": rng.randint(0, 4),
            "duration": rng.randint(30, 3600),
        })
    for i in rng.sample(range(n), n // 2):
        specs[i]["complete"] = True
    return specs


@defer.inlineCallbacks
def run(reactor, args):
    url = sqlalchemy_url(args.url)
    db = yield connect(reactor, url)
    try:
        t0 = time.monotonic()
        yield db.model.upgrade()
        upgrade_s = time.monotonic() - t0

        def last_submitted(conn):
            tbl = db.model.buildsets
            return conn.execute(sa.select(sa.func.max(tbl.c.submitted_at))).scalar()

        last = yield db.pool.do(last_submitted)
        interval = 60
        if args.start_epoch is not None:
            start = args.start_epoch
        else:
            start = int(time.time()) - args.count * interval
            if last is not None:
                start = max(start, int(last) + interval)

        specs = make_specs(args.count, args.seed)
        builderids = {}
        for name in BUILDERS:
            builderids[name] = yield db.builders.findBuilderId(name)

        counts = {"sourcestamps": 0, "patches": 0, "buildrequests": 0, "completed": 0}

        @defer.inlineCallbacks
        def one(i):
            spec = specs[i]
            submitted = start + i * interval
            bsid, brids = yield db.buildsets.addBuildset(
                sourcestamps=spec["sourcestamps"],
                reason=spec["reason"],
                properties=spec["properties"],
                builderids=[builderids[b] for b in spec["builders"]],
                waited_for=False,
                submitted_at=epoch2datetime(submitted),
            )
            counts["sourcestamps"] += len(spec["sourcestamps"])
            counts["patches"] += sum(1 for ss in spec["sourcestamps"] if "patch_body" in ss)
            counts["buildrequests"] += len(brids)
            if spec.get("complete"):
                done = epoch2datetime(submitted + spec["duration"])
                if not args.leave_requests_open:
                    yield db.buildrequests.completeBuildRequests(list(brids.values()), spec["results"],
                                                                 complete_at=done)
                yield db.buildsets.completeBuildset(bsid, spec["results"], complete_at=done)
                counts["completed"] += 1

        # A fixed number of workers, each taking the next index: --concurrency in flight.
        todo = iter(range(args.count))

        @defer.inlineCallbacks
        def worker():
            for i in todo:
                yield one(i)

        t1 = time.monotonic()
        yield defer.gatherResults([worker() for _ in range(args.concurrency)], consumeErrors=True)
        seconds = time.monotonic() - t1
        out = {"buildsets": args.count, "seconds": round(seconds, 2),
               "buildsets_per_s": round(args.count / seconds, 1) if seconds else None,
               "schema_upgrade_s": round(upgrade_s, 2), "seed": args.seed,
               "concurrency": args.concurrency}
        out.update(counts)
        print(json.dumps(out), flush=True)
    finally:
        yield db.pool.stop()


def main():
    p = argparse.ArgumentParser(
        description="Create Buildbot 4.3's schema if absent and write N realistic buildsets "
                    "through Buildbot's own connector (db.buildsets.addBuildset); half are completed.",
        epilog="URL: postgres://postgres@127.0.0.1:5432/NAME, sqlite:///abs/path.db?mode=rwc or mysql://...")
    p.add_argument("url", metavar="URL", help="database URL (this server's form)")
    p.add_argument("--count", type=int, required=True, help="buildsets to write")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--concurrency", type=int, default=12,
                   help="buildsets in flight at once (default 12; Buildbot's PostgreSQL pool has 15 threads)")
    p.add_argument("--start-epoch", type=int, default=None,
                   help="submitted_at of the first buildset (default: so that the last one is about now, "
                        "and after any buildset already there)")
    p.add_argument("--leave-requests-open", action="store_true",
                   help="complete only the buildsets (completeBuildset), not their build requests")
    args = p.parse_args()
    task.react(lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
