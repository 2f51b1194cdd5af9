"""A Buildbot master service that makes the master see build requests written to its
database by another program (buildsets-graphql).

A Buildbot master never watches its database for new build requests: it starts
builds when its message queue announces them, and Buildbot's own data-layer
``addBuildset`` sends those messages. A row written by another process sends none,
so the request would wait until something else wakes its builder. This service
notices such requests and sends exactly the messages Buildbot's ``addBuildset``
would have sent (``buildrequests/<brid>/new`` and ``buildsets/<bsid>/new``, built by
Buildbot's own resource types), so the master schedules them at once.

In ``master.cfg``::

    from buildsets_graphql_bridge import Bridge
    c['services'] = [Bridge()]             # poll_interval=1.0, grace=1.0

How requests are noticed:

- every ``poll_interval`` seconds, one query for build requests with an id above
  the last one decided;
- on PostgreSQL, also ``LISTEN buildsets_graphql``: buildsets-graphql notifies it
  for every buildset it adds, which is then announced at once;
- a request the master's own message queue announced (Buildbot wrote it), that is
  claimed or that is complete is left alone; any other is announced once it has
  been seen for ``grace`` seconds without such an announcement.

The last request decided is kept in Buildbot's object state, so a restarted master
announces what was written while it was down. With the ``wamp`` message queue (a
cluster), only the active master with the lowest id announces; with the default
in-process queue, every master announces to itself.
"""

import select
import threading
import time

import sqlalchemy as sa
from twisted.internet import defer, task
from twisted.python import log

from buildbot import config
from buildbot.process.buildrequest import BuildRequestCollapser
from buildbot.util import datetime2epoch, service

CHANNEL = "buildsets_graphql"

# An id skipped over (a transaction that took it and has not committed) is looked
# for again for this long before it is taken for a rollback.
GAP_SECONDS = 60.0


class Bridge(service.BuildbotService):
    name = "buildsets-graphql-bridge"

    def checkConfig(self, poll_interval=1.0, grace=1.0, **kwargs):
        if not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
            config.error("Bridge: poll_interval must be a positive number of seconds")
        if not isinstance(grace, (int, float)) or grace < 0:
            config.error("Bridge: grace must be a number of seconds, 0 or more")

    def reconfigService(self, poll_interval=1.0, grace=1.0, **kwargs):
        self.poll_interval = float(poll_interval)
        self.grace = float(grace)
        if getattr(self, "_loop", None) is not None and self._loop.running:
            self._loop.stop()
            self._loop = task.LoopingCall(self._tick)
            self._loop.start(self.poll_interval, now=True)
        return defer.succeed(None)

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        self._floor = None  # every request id up to this one is decided
        self._decided = set()  # decided ids above the floor
        self._first_seen = {}  # undecided id -> when first seen
        self._missing = {}  # id skipped over -> when first missed
        self._announced_by_mq = set()
        self._hinted = set()  # bsids buildsets-graphql notified
        self._busy = False
        self._again = False
        self.objectid = yield self.master.db.state.getObjectId(self.name, "buildsets_graphql_bridge.Bridge")
        self._consumer = yield self.master.mq.startConsuming(self._seen_on_mq, ("buildrequests", None, "new"))
        self._stopping = threading.Event()
        self._listener = None
        if self.master.db.pool.engine.dialect.name == "postgresql":
            self._listener = threading.Thread(target=self._listen, name="buildsets-graphql-listen", daemon=True)
            self._listener.start()
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(self.poll_interval, now=True)

    @defer.inlineCallbacks
    def stopService(self):
        self._stopping.set()
        if self._loop.running:
            self._loop.stop()
        self._consumer.stopConsuming()
        yield super().stopService()

    def _seen_on_mq(self, key, msg):
        brid = msg.get("buildrequestid")
        if brid is not None:
            self._announced_by_mq.add(brid)

    # PostgreSQL LISTEN, on a connection of its own in a thread of its own.
    def _listen(self):
        from twisted.internet import reactor

        try:
            import psycopg2
        except ImportError:
            log.msg("buildsets-graphql bridge: psycopg2 is missing, polling only")
            return
        url = self.master.db.pool.engine.url
        failures = 0
        while not self._stopping.is_set():
            try:
                conn = psycopg2.connect(
                    host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                    dbname=url.database, application_name="buildsets-graphql-bridge",
                )
                conn.autocommit = True
                conn.cursor().execute(f'LISTEN "{CHANNEL}"')
                failures = 0
                # Whatever was notified while no one listened is found by a poll.
                reactor.callFromThread(self._wake)
                while not self._stopping.is_set():
                    if select.select([conn], [], [], 1.0)[0]:
                        conn.poll()
                        while conn.notifies:
                            payload = conn.notifies.pop(0).payload
                            kind, _, bsid = payload.partition(":")
                            if kind == "a" and bsid.isdigit():
                                reactor.callFromThread(self._hint, int(bsid))
                conn.close()
            except Exception as e:  # the database went away: the poll covers
                failures += 1
                if failures == 1:
                    log.msg(f"buildsets-graphql bridge: LISTEN failed ({e}); retrying, polling meanwhile")
                time.sleep(min(5.0, 0.2 * failures))

    def _hint(self, bsid):
        self._hinted.add(bsid)
        self._wake()

    def _wake(self):
        d = self._tick()
        d.addErrback(log.err, "buildsets-graphql bridge")

    @defer.inlineCallbacks
    def _tick(self):
        # One pass at a time; a wake-up during a pass runs another right after it.
        if self._busy:
            self._again = True
            return
        self._busy = True
        try:
            while True:
                self._again = False
                yield self._pass()
                if not self._again:
                    break
        except Exception as e:
            log.msg(f"buildsets-graphql bridge: poll failed: {e}")
        finally:
            self._busy = False

    @defer.inlineCallbacks
    def _leads(self):
        if self.master.config.mq.get("type", "simple") != "wamp":
            return True
        masters = self.master.db.model.masters

        def thd(conn):
            return conn.execute(sa.select(sa.func.min(masters.c.id)).where(masters.c.active != 0)).scalar()

        leader = yield self.master.db.pool.do(thd)
        return leader == self.master.masterid

    @defer.inlineCallbacks
    def _pass(self):
        if self._floor is None:
            self._floor = yield self.master.db.state.getState(self.objectid, "last_brid", None)
            if self._floor is None:
                # A first start: what is there now is Buildbot's business (it starts
                # pending requests itself when it starts).
                self._floor = yield self.master.db.pool.do(self._max_brid)
                yield self.master.db.state.setState(self.objectid, "last_brid", self._floor)
        if not (yield self._leads()):
            return
        # The hints are taken before the read: each names a buildset whose commit
        # came before it, so the read sees its requests. A hint taken after the read
        # could name a buildset committed after it, and be used up without effect
        # (the request then waited out the grace, and a worker freed meanwhile let
        # Buildbot claim it unannounced).
        hinted = self._hinted
        self._hinted = set()
        rows = yield self.master.db.pool.do(self._requests_above, self._floor)
        now = time.monotonic()
        to_announce = {}
        for brid, bsid, complete, claimed in rows:
            if brid in self._decided:
                continue
            first = self._first_seen.setdefault(brid, now)
            if complete or claimed or brid in self._announced_by_mq:
                self._decide(brid)
            elif bsid in hinted or now - first >= self.grace:
                to_announce.setdefault(bsid, []).append(brid)
        for bsid, brids in sorted(to_announce.items()):
            yield self._announce(bsid, brids)
            for brid in brids:
                self._decide(brid)
        yield self._advance([r[0] for r in rows], now)

    def _decide(self, brid):
        self._decided.add(brid)
        self._first_seen.pop(brid, None)
        self._announced_by_mq.discard(brid)

    @defer.inlineCallbacks
    def _advance(self, seen, now):
        seen = set(seen)
        floor = self._floor
        top = max(seen) if seen else floor
        while floor < top:
            nxt = floor + 1
            if nxt in self._decided:
                self._decided.discard(nxt)
            elif nxt in seen:
                break  # still undecided
            else:
                # Skipped over: an uncommitted transaction, or a rollback once old.
                first = self._missing.setdefault(nxt, now)
                if now - first < GAP_SECONDS and top - nxt < 10_000:
                    break
                self._missing.pop(nxt, None)
            floor = nxt
        if floor != self._floor:
            self._floor = floor
            yield self.master.db.state.setState(self.objectid, "last_brid", floor)

    def _max_brid(self, conn):
        br = self.master.db.model.buildrequests
        return conn.execute(sa.select(sa.func.max(br.c.id))).scalar() or 0

    def _requests_above(self, conn, floor):
        br = self.master.db.model.buildrequests
        claims = self.master.db.model.buildrequest_claims
        q = (
            sa.select(br.c.id, br.c.buildsetid, br.c.complete, claims.c.brid)
            .select_from(br.outerjoin(claims, claims.c.brid == br.c.id))
            .where(br.c.id > floor)
            .order_by(br.c.id)
            .limit(1000)
        )
        return [(r[0], r[1], bool(r[2]), r[3] is not None) for r in conn.execute(q).fetchall()]

    @defer.inlineCallbacks
    def _announce(self, bsid, brids):
        """What Buildbot's data-layer addBuildset does after its database write."""
        yield BuildRequestCollapser(self.master, list(brids)).collapse()
        bsdict = yield self.master.db.buildsets.getBuildset(bsid)
        if bsdict is None:
            return
        sourcestamps = []
        for ssid in bsdict.sourcestamps:
            sourcestamps.append((yield self.master.data.get(("sourcestamps", str(ssid)))).copy())
        props = yield self.master.db.buildsets.getBuildsetProperties(bsid)
        scheduler = props.get("scheduler", (None, None))[0]
        yield self.master.data.getResourceType("buildrequest").generateEvent(list(brids), "new")
        msg = {
            "bsid": bsid,
            "external_idstring": bsdict.external_idstring,
            "reason": bsdict.reason,
            "parent_buildid": bsdict.parent_buildid,
            "rebuilt_buildid": bsdict.rebuilt_buildid,
            "submitted_at": datetime2epoch(bsdict.submitted_at),
            "complete": False,
            "complete_at": None,
            "results": None,
            "scheduler": scheduler,
            "sourcestamps": sourcestamps,
        }
        self.master.data.getResourceType("buildset").produceEvent(msg, "new")
        log.msg(f"buildsets-graphql bridge: announced buildset {bsid} (build requests {sorted(brids)})")
