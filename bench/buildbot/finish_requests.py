"""Finish the build requests of every incomplete buildset, as finished builds do, through
Buildbot 4.3's connector (db.buildrequests.completeBuildRequests, results 0), leaving the
buildsets themselves incomplete.

bench runs it before scenario g on a database Buildbot's schema holds: there this server
completes a buildset only once its requests are finished (BUILD_REQUESTS_UNFINISHED
otherwise, as a master would do it), while Buildbot's completeBuildset does not check.
Both then complete buildsets in the same state.

Prints one JSON line: {"buildrequests": N, "seconds": ...}.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sqlalchemy as sa  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from bbconn import connect, sqlalchemy_url  # noqa: E402


@defer.inlineCallbacks
def run(reactor, args):
    db = yield connect(reactor, sqlalchemy_url(args.url))
    try:
        t0 = time.monotonic()

        def open_requests(conn):
            bs, br = db.model.buildsets, db.model.buildrequests
            q = (sa.select(br.c.id)
                 .select_from(br.join(bs, br.c.buildsetid == bs.c.id))
                 .where(bs.c.complete != 1)
                 .where(sa.func.coalesce(br.c.complete, 0) != 1))
            return [r[0] for r in conn.execute(q)]

        brids = yield db.pool.do(open_requests)
        for i in range(0, len(brids), 500):
            yield db.buildrequests.completeBuildRequests(brids[i:i + 500], 0)
        print(json.dumps({"buildrequests": len(brids), "seconds": round(time.monotonic() - t0, 2)}),
              flush=True)
    finally:
        yield db.pool.stop()


def main():
    p = argparse.ArgumentParser(description="Finish the build requests of every incomplete buildset.")
    p.add_argument("url", metavar="URL", help="database URL (this server's form)")
    args = p.parse_args()
    task.react(lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
