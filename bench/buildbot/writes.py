"""Write throughput of Buildbot 4.3's own database connector, called in-process.

Phases of --seconds each (--ops picks them, in this order), every one keeping
--inflight calls in flight:
  add               db.buildsets.addBuildset with 1 new sourcestamp (a branch and a
                    revision never seen before), 2 builders (of builder-0..builder-9) and
                    3 properties (int, str, list);
  add-existing      the same with an existing sourcestamp, by its id (Buildbot's
                    addBuildset takes an int for one), drawn from the 1,000 newest;
  complete          db.buildsets.completeBuildset(bsid, results) on buildsets that were
                    incomplete when the phase began, newest first (so the ones just added
                    come first); the phase ends early if it runs out of them ("ran_out": true).

Prints one JSON line per operation: {"op", "ops_per_s", "p50_ms", "p99_ms", "ops",
"statements_per_op", "commits_per_op", ...}: statements are the SQL statements the
connector's engine sent (SQLAlchemy's before_cursor_execute; BEGIN and COMMIT are not
statements), commits its transactions, both divided by the calls done.
The schema must exist (seed.py creates it); builders are found or created by name.
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

from bbconn import connect, percentile, sqlalchemy_url  # noqa: E402


class Counts:
    """Statements and commits the connector's engine sends (from its worker threads)."""

    def __init__(self, engine):
        self.statements = 0
        self.commits = 0
        sa.event.listen(engine, "before_cursor_execute", self.statement)
        sa.event.listen(engine, "commit", self.commit)

    def statement(self, *args, **kwargs):
        self.statements += 1

    def commit(self, *args, **kwargs):
        self.commits += 1


@defer.inlineCallbacks
def phase(name, seconds, inflight, next_call, counts):
    """Run next_call() (a Deferred, or None when nothing is left) with `inflight` in flight."""
    statements0, commits0 = counts.statements, counts.commits
    latencies = []
    exhausted = []
    end = time.monotonic() + seconds
    t0 = time.monotonic()

    @defer.inlineCallbacks
    def worker():
        while time.monotonic() < end:
            start = time.perf_counter()
            d = next_call()
            if d is None:
                exhausted.append(True)
                return
            yield d
            latencies.append(time.perf_counter() - start)

    yield defer.gatherResults([worker() for _ in range(inflight)], consumeErrors=True)
    elapsed = time.monotonic() - t0
    latencies.sort()
    n = len(latencies)
    return {
        "op": name,
        "ops_per_s": round(n / elapsed, 1) if elapsed else None,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if n else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if n else None,
        "ops": n,
        "seconds": round(elapsed, 2),
        "inflight": inflight,
        "ran_out": bool(exhausted),
        "statements_per_op": round((counts.statements - statements0) / n, 2) if n else None,
        "commits_per_op": round((counts.commits - commits0) / n, 2) if n else None,
    }


@defer.inlineCallbacks
def run(reactor, args):
    db = yield connect(reactor, sqlalchemy_url(args.url))
    try:
        builderids = []
        for i in range(10):
            builderids.append((yield db.builders.findBuilderId(f"builder-{i}")))
        rng = random.Random(args.seed)
        tag = f"{int(time.time())}-{os.getpid()}"
        counter = iter(range(1 << 62))
        counts = Counts(db.pool.engine)
        ops = args.ops.split(",")

        def add():
            i = next(counter)
            return db.buildsets.addBuildset(
                sourcestamps=[{
                    "branch": f"writes/{tag}/{i}",
                    "revision": "%040x" % rng.getrandbits(160),
                    "repository": "https://git.example.org/acme/core.git",
                    "project": "acme",
                    "codebase": "core",
                }],
                reason="scheduler writes",
                properties={
                    "attempt": (i, "Scheduler"),
                    "owner": (f"writer-{i % 7}@example.org", "Force Build Form"),
                    "targets": (["test", "lint"][: 1 + i % 2], "Scheduler"),
                },
                builderids=rng.sample(builderids, 2),
                waited_for=False,
            )

        if "add" in ops:
            result = yield phase("addBuildset", args.seconds, args.inflight, add, counts)
            print(json.dumps(result), flush=True)

        def newest_ssids(conn):
            tbl = db.model.sourcestamps
            return [r[0] for r in conn.execute(sa.select(tbl.c.id).order_by(tbl.c.id.desc()).limit(1000))]

        ssids = (yield db.pool.do(newest_ssids)) if "add-existing" in ops else []

        def add_existing():
            i = next(counter)
            return db.buildsets.addBuildset(
                sourcestamps=[rng.choice(ssids)],
                reason="scheduler writes",
                properties={
                    "attempt": (i, "Scheduler"),
                    "owner": (f"writer-{i % 7}@example.org", "Force Build Form"),
                    "targets": (["test", "lint"][: 1 + i % 2], "Scheduler"),
                },
                builderids=rng.sample(builderids, 2),
                waited_for=False,
            )

        if ssids:
            result = yield phase("addBuildsetExisting", args.seconds, args.inflight, add_existing, counts)
            print(json.dumps(result), flush=True)
        if "complete" not in ops:
            return

        def incomplete(conn):
            tbl = db.model.buildsets
            q = sa.select(tbl.c.id).where((tbl.c.complete == 0) | (tbl.c.complete.is_(None)))
            return [r[0] for r in conn.execute(q.order_by(tbl.c.id.desc()))]

        todo = iter((yield db.pool.do(incomplete)))

        def complete():
            bsid = next(todo, None)
            if bsid is None:
                return None
            return db.buildsets.completeBuildset(bsid, rng.randint(0, 4))

        result = yield phase("completeBuildset", args.seconds, args.inflight, complete, counts)
        print(json.dumps(result), flush=True)
    finally:
        yield db.pool.stop()


def main():
    p = argparse.ArgumentParser(
        description="Measure db.buildsets.addBuildset and db.buildsets.completeBuildset of Buildbot 4.3's "
                    "connector, in-process, with N calls in flight; one JSON line per operation.",
        epilog="URL: postgres://postgres@127.0.0.1:5432/NAME or sqlite:///abs/path.db?mode=rwc")
    p.add_argument("url", metavar="URL", help="database URL (this server's form); the schema must exist")
    p.add_argument("--seconds", type=float, default=10, help="duration of each phase (default 10)")
    p.add_argument("--inflight", type=int, default=8, help="calls in flight (default 8)")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--ops", default="add,add-existing,complete",
                   help="phases to run, comma-separated: add, add-existing, complete (default: all three)")
    args = p.parse_args()
    task.react(lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
