"""A Buildbot master service that makes the master see what buildsets-graphql wrote
to its database: new buildsets, and build requests to cancel.

A Buildbot master never watches its database for new build requests: it starts
builds when its message queue announces them, and Buildbot's own data-layer
``addBuildset`` sends those messages. A row written by another process sends none,
so the request would wait until something else wakes its builder.

buildsets-graphql, attached to a master's database, leaves a row in Buildbot's
``object_state`` table, under this service's object, in the same transaction as
each write the master must hear of:

- ``announce:<bsid>``: a buildset it added. This service sends exactly the messages
  Buildbot's ``addBuildset`` sends (``buildrequests/<brid>/new`` for each request,
  ``buildsets/<bsid>/new``, after Buildbot's request collapsing; and
  ``buildsets/<bsid>/complete`` for a buildset with no builders, which is complete
  at once), so the master schedules it at once. Only what buildsets-graphql wrote
  is announced: the master's own buildsets are never announced twice.
- ``cancel:<brid>``: a build request the master has claimed, to cancel. This
  service runs Buildbot's own cancel (the ``cancel`` control of
  ``/buildrequests/<brid>``), which stops its build; Buildbot then completes the
  request and the buildset with CANCELLED and sends its messages.
- ``cancelled:<brid>``: an unclaimed request buildsets-graphql cancelled itself;
  this service sends the completion messages Buildbot's cancel would have sent;
  ``completed:<bsid>``: a buildset it completed when cancelling found nothing left
  to cancel; this service sends its completion message.

Each row is deleted once acted on. In ``master.cfg``::

    from buildsets_graphql_bridge import Bridge
    c['services'] = [Bridge()]             # poll_interval=0.25

The rows are read every ``poll_interval`` seconds (one indexed query), and on
PostgreSQL at once too: buildsets-graphql notifies the channel
``buildsets_graphql``, which this service ``LISTEN``s on. Rows left while the master
was down are acted on when it starts. With the ``wamp`` message queue (a cluster),
only the active master with the lowest id acts.
"""

import json
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
REASON = "cancelled through buildsets-graphql"
# A buildset complete for longer than this when its row is first read (the bridge
# was not running) is not announced.
STALE_SECONDS = 600
# The object buildsets-graphql leaves its rows under (its Store finds or makes it
# the same way, by name and class name).
OBJECT_CLASS = "buildsets_graphql_bridge.Bridge"


class Bridge(service.BuildbotService):
    name = "buildsets-graphql-bridge"

    def checkConfig(self, poll_interval=0.25, grace=None, **kwargs):
        if not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
            config.error("Bridge: poll_interval must be a positive number of seconds")
        unknown = sorted(set(kwargs) - {"name"})
        if unknown:
            config.error(f"Bridge: unknown argument(s) {', '.join(unknown)}; it takes poll_interval (seconds)")

    def reconfigService(self, poll_interval=0.25, grace=None, **kwargs):
        if grace is not None:
            log.msg("buildsets-graphql bridge: grace is no longer used (what to announce is no longer guessed)")
        self.poll_interval = float(poll_interval)
        if getattr(self, "_loop", None) is not None and self._loop.running:
            self._loop.stop()
            self._loop = task.LoopingCall(self._tick)
            self._loop.start(self.poll_interval, now=True)
        return defer.succeed(None)

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        self._busy = False
        self._again = False
        self.objectid = yield self.master.db.state.getObjectId(self.name, OBJECT_CLASS)
        self._stopping = threading.Event()
        self._listener = None
        if self.master.db.pool.engine.dialect.name == "postgresql":
            self._listener = threading.Thread(target=self._listen, name="buildsets-graphql-listen", daemon=True)
            self._listener.start()
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(self.poll_interval, now=True)
        log.msg(f"buildsets-graphql bridge: started (object {self.objectid}, reading its rows every "
                f"{self.poll_interval:g} s{' and on NOTIFY ' + CHANNEL if self._listener else ''})")

    @defer.inlineCallbacks
    def stopService(self):
        self._stopping.set()
        if self._loop.running:
            self._loop.stop()
        yield super().stopService()

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
                        if conn.notifies:
                            conn.notifies.clear()
                            reactor.callFromThread(self._wake)
                conn.close()
            except Exception as e:  # the database went away: the poll covers
                failures += 1
                if failures == 1:
                    log.msg(f"buildsets-graphql bridge: LISTEN failed ({e}); retrying, polling meanwhile")
                time.sleep(min(5.0, 0.2 * failures))

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
        if not (yield self._leads()):
            return
        rows = yield self.master.db.pool.do(self._rows)
        announce, cancel, cancelled, completed = [], [], {}, []
        for name, value in rows:
            kind, _, ident = name.partition(":")
            if not ident.isdigit():
                continue
            try:
                value = json.loads(value) if value else {}
            except ValueError:
                value = {}
            if kind == "announce":
                announce.append((int(ident), bool(value.get("complete")), name))
            elif kind == "cancel":
                cancel.append((int(ident), name))
            elif kind == "completed":
                completed.append((int(ident), name))
            elif kind == "cancelled":
                cancelled.setdefault(value.get("bsid"), []).append((int(ident), bool(value.get("buildset_complete")), name))
        for bsid, complete, name in sorted(announce):
            yield self._announce(bsid, complete)
            yield self._done(name)
        for bsid, items in sorted(cancelled.items(), key=lambda kv: kv[0] or 0):
            yield self._completed(bsid, sorted(b for b, _, _ in items), any(c for _, c, _ in items))
            for _, _, name in items:
                yield self._done(name)
        for bsid, name in sorted(completed):
            bsdict = yield self.master.db.buildsets.getBuildset(bsid)
            if bsdict is not None and bsdict.complete:
                yield self._buildset_complete(bsdict)
            yield self._done(name)
        for brid, name in sorted(cancel):
            try:
                yield self.master.data.control("cancel", {"reason": REASON}, ("buildrequests", brid))
                log.msg(f"buildsets-graphql bridge: cancelled build request {brid}")
            except Exception as e:
                log.msg(f"buildsets-graphql bridge: could not cancel build request {brid}: {e}")
            yield self._done(name)

    def _rows(self, conn):
        st = self.master.db.model.object_state
        q = (
            sa.select(st.c.name, st.c.value_json)
            .where(st.c.objectid == self.objectid)
            .where(sa.or_(*(st.c.name.like(f"{kind}:%") for kind in ("announce", "cancel", "cancelled", "completed"))))
            .limit(1000)
        )
        return [(r[0], r[1]) for r in conn.execute(q).fetchall()]

    def _done(self, name):
        st = self.master.db.model.object_state

        def thd(conn):
            conn.execute(st.delete().where(st.c.objectid == self.objectid).where(st.c.name == name))
            conn.commit()

        return self.master.db.pool.do(thd)

    def _requests_of(self, bsid):
        br = self.master.db.model.buildrequests

        def thd(conn):
            q = sa.select(br.c.id).where(br.c.buildsetid == bsid).order_by(br.c.id)
            return [r[0] for r in conn.execute(q).fetchall()]

        return self.master.db.pool.do(thd)

    @defer.inlineCallbacks
    def _buildset_msg(self, bsdict, **state):
        sourcestamps = []
        for ssid in bsdict.sourcestamps:
            sourcestamps.append((yield self.master.data.get(("sourcestamps", str(ssid)))).copy())
        msg = {
            "bsid": bsdict.bsid,
            "external_idstring": bsdict.external_idstring,
            "reason": bsdict.reason,
            "parent_buildid": bsdict.parent_buildid,
            "parent_relationship": bsdict.parent_relationship,
            "rebuilt_buildid": bsdict.rebuilt_buildid,
            "submitted_at": datetime2epoch(bsdict.submitted_at),
            "sourcestamps": sourcestamps,
            **state,
        }
        return msg

    @defer.inlineCallbacks
    def _announce(self, bsid, complete):
        """What Buildbot's data-layer addBuildset does after its database write."""
        bsdict = yield self.master.db.buildsets.getBuildset(bsid)
        if bsdict is None:
            return
        if (not complete and bsdict.complete and bsdict.complete_at is not None
                and time.time() - datetime2epoch(bsdict.complete_at) > STALE_SECONDS):
            # Left while no bridge ran, and long finished: news to no one.
            log.msg(f"buildsets-graphql bridge: buildset {bsid} finished long ago, not announced")
            return
        brids = yield self._requests_of(bsid)
        if brids:
            yield BuildRequestCollapser(self.master, list(brids)).collapse()
        props = yield self.master.db.buildsets.getBuildsetProperties(bsid)
        scheduler = props.get("scheduler", (None, None))[0]
        if brids:
            yield self.master.data.getResourceType("buildrequest").generateEvent(list(brids), "new")
        msg = yield self._buildset_msg(bsdict, complete=False, complete_at=None, results=None, scheduler=scheduler)
        self.master.data.getResourceType("buildset").produceEvent(msg, "new")
        log.msg(f"buildsets-graphql bridge: announced buildset {bsid} (build requests {sorted(brids)})")
        if complete and bsdict.complete:
            yield self._buildset_complete(bsdict)

    @defer.inlineCallbacks
    def _buildset_complete(self, bsdict):
        """The message Buildbot's maybeBuildsetComplete sends."""
        msg = yield self._buildset_msg(
            bsdict, complete=True, complete_at=datetime2epoch(bsdict.complete_at), results=bsdict.results)
        self.master.data.getResourceType("buildset").produceEvent(msg, "complete")
        log.msg(f"buildsets-graphql bridge: announced buildset {bsdict.bsid} complete")

    @defer.inlineCallbacks
    def _completed(self, bsid, brids, buildset_complete):
        """What Buildbot's cancel of unclaimed requests sends after its writes."""
        yield self.master.data.getResourceType("buildrequest").generateEvent(list(brids), "complete")
        for brid in brids:
            brdict = yield self.master.db.buildrequests.getBuildRequest(brid)
            if brdict is not None:
                self.master.mq.produce(("buildrequests", str(brid), "cancel"), brdict)
        log.msg(f"buildsets-graphql bridge: announced build requests {brids} cancelled")
        if buildset_complete and bsid is not None:
            bsdict = yield self.master.db.buildsets.getBuildset(bsid)
            if bsdict is not None and bsdict.complete:
                yield self._buildset_complete(bsdict)
