"""Drives Buildbot 4.3's own database code for the interoperability tests.

Usage: python bb.py COMMAND DB_URL [ARGS...]; every command prints one JSON document.

  create                 build the schema as `buildbot upgrade-master` does
  populate               write buildsets with every feature through Buildbot's connectors
  dump                   read everything back through Buildbot's connectors
  find-ss JSON           findSourceStampId(**JSON)
  find-builder NAME      findBuilderId(NAME)
  add BRANCH             addBuildset with one sourcestamp on BRANCH and builder "bb-live"
  complete BSID RESULTS  completeBuildset(BSID, RESULTS)
  schema                 SQLAlchemy's view of the seven buildset tables
  compare API_URL        Buildbot's reads against the API's answer, as an outside
                         client reads it (urllib + json); prints the mismatches
"""

import hashlib
import json
import math
import sys
import urllib.request
from datetime import datetime
import tempfile
import warnings

import sqlalchemy as sa
from twisted.internet import defer, task

from buildbot.config.master import DBConfig
from buildbot.db.connector import DBConnector
from buildbot.util import datetime2epoch, epoch2datetime

TABLES = [
    "buildsets",
    "buildset_properties",
    "buildset_sourcestamps",
    "sourcestamps",
    "patches",
    "buildrequests",
    "builders",
]

# Properties of every JSON type, as a scheduler would set them.
PROPERTIES = {
    "int": (1, "Scheduler"),
    "float": (1.0, "Scheduler"),
    "str": ("1", "Scheduler"),
    "bool": (True, "Change"),
    "none": (None, "Change"),
    "list": ([1, "a", [2.5], {"x": None}], "Force"),
    "dict": ({"b": 1, "a": {"\u00fc": "\u00e9"}}, "Force"),
    "big": (12345678901234, "Force"),
    "unicode": ("caf\u00e9 \U0001f600", "Force"),
    "numbers": ({"i": 3, "f": 3.0, "l": [1, 2.0, -0.5], "sci": 1e16, "tiny": 1.5e-05}, "Force"),
    # What json.dumps writes but JSON cannot carry exactly.
    "nan": (float("nan"), "Force"),
    "inf": ([float("inf"), float("-inf")], "Force"),
    "wide": (2**80, "Force"),
}


def api_view(value):
    """A property value as the API documents it: Python's NaN, Infinity and integers
    beyond 64 bits come out as strings of Python's own text."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return json.dumps(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, list):
        return [api_view(v) for v in value]
    if isinstance(value, dict):
        return {k: api_view(v) for k, v in value.items()}
    return value


class NoCache:
    """Buildbot's connectors cache reads; these tests must see the database itself."""

    def __init__(self, name, miss_fn):
        self.miss_fn = miss_fn

    def get(self, key, **kwargs):
        return self.miss_fn(key, **kwargs)

    def put(self, key, val):
        pass


class NoCaches:
    def get_cache(self, name, miss_fn):
        return NoCache(name, miss_fn)


class Master:
    """Just enough of a master for the database connectors."""

    def __init__(self, reactor, url):
        self.reactor = reactor
        self.caches = NoCaches()
        self.basedir = tempfile.mkdtemp()
        self.config = type("Config", (), {"changeHorizon": None})()
        self.db_url = url


@defer.inlineCallbacks
def connect(reactor, url):
    master = Master(reactor, url)
    db = DBConnector(master.basedir)
    db.configured_db_config = DBConfig(db_url=url)
    yield db.set_master(master)
    master.db = db
    yield db.setup(check_version=False, verbose=False)
    return db


def ts(dt):
    return None if dt is None else datetime2epoch(dt)


@defer.inlineCallbacks
def populate(db):
    out = {}
    linux = yield db.builders.findBuilderId("bb-linux")
    mac = yield db.builders.findBuilderId("bb-mac")
    out["builders"] = {"bb-linux": linux, "bb-mac": mac}
    masterid = yield db.masters.findMasterId("interop-master")
    workerid = yield db.workers.findWorkerId("interop-worker")

    stamp_a = {
        "branch": "main",
        "revision": "a" * 40,
        "repository": "https://example.org/repo.git",
        "project": "proj",
        "codebase": "cb",
    }
    patched = {
        "branch": "feature/\u00fcn\u00efcode",
        "revision": None,
        "repository": "git://x",
        "project": "",
        "codebase": "",
        "patch_body": b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+y\n",
        "patch_level": 2,
        "patch_author": "alice",
        "patch_comment": "fix it",
        "patch_subdir": "sub/dir",
    }
    shared = {"branch": "shared-bb", "revision": None, "repository": "r", "project": "", "codebase": ""}
    bsids = []
    bsid, brids = yield db.buildsets.addBuildset(
        sourcestamps=[stamp_a, patched],
        reason="buildbot wrote this",
        properties=PROPERTIES,
        builderids=[mac, linux],
        waited_for=True,
        external_idstring="ext-1",
        submitted_at=epoch2datetime(1_700_000_000),
        priority=3,
    )
    bsids.append(bsid)
    # A build, so that parent and rebuilt build ids point at something real.
    buildid, _ = yield db.builds.addBuild(linux, brids[linux], workerid, masterid, "building")
    out["buildid"] = buildid
    ss = yield db.sourcestamps.findSourceStampId(**stamp_a)
    for i, results in enumerate(range(7)):
        bsid, _ = yield db.buildsets.addBuildset(
            sourcestamps=[ss, shared] if i == 0 else [dict(stamp_a, branch=f"b{i % 2}")],
            reason=f"complete with {results}",
            properties={"i": (i, "Loop")},
            builderids=[linux] if i % 2 else [],
            waited_for=False,
            submitted_at=epoch2datetime(1_700_000_100 + i * 10),
            parent_buildid=buildid if i == 1 else None,
            parent_relationship="triggered" if i == 1 else None,
            rebuilt_buildid=buildid if i == 2 else None,
        )
        yield db.buildsets.completeBuildset(bsid, results, complete_at=epoch2datetime(1_700_001_000 + i))
        bsids.append(bsid)
    out["bsids"] = bsids
    out["shared_ssid"] = yield db.sourcestamps.findSourceStampId(**shared)
    return out


@defer.inlineCallbacks
def showcase(db):
    """What a master's day looks like, written the way a master writes it: buildsets
    on five builders, their build requests built (builds numbered per builder) and
    completed with every result, some still running, the newest not started."""
    builders = {}
    for name in ("linux-gcc", "linux-clang", "macos", "windows", "docs"):
        builders[name] = yield db.builders.findBuilderId(name)
    masterid = yield db.masters.findMasterId("showcase-master")
    workerid = yield db.workers.findWorkerId("showcase-worker")
    plan = [
        # reason, branch, builders, owner, results per builder (None: running, "-": not started)
        ("The SingleBranchScheduler scheduler named 'main' triggered this build", "main",
         ["linux-gcc", "linux-clang", "macos", "windows", "docs"], "alice@example.org", [0, 0, 0, 0, 0]),
        ("The web-page 'force' button was pressed by 'bob': flaky test?", "release/2.x",
         ["linux-gcc", "windows"], "bob@example.org", [0, 1]),
        ("The SingleBranchScheduler scheduler named 'main' triggered this build", "main",
         ["linux-gcc", "linux-clang", "macos", "windows"], "carol@example.org", [0, 2, 0, 0]),
        ("The Triggerable scheduler named 'deploy' triggered this build", "main",
         ["docs"], "deploy", [1]),
        ("The Nightly scheduler named 'nightly' triggered this build", "main",
         ["linux-gcc", "macos", "docs"], "nightly", [0, 4, 3]),
        ("The SingleBranchScheduler scheduler named 'main' triggered this build", "feature/cache",
         ["linux-gcc", "linux-clang"], "dave@example.org", [6, 6]),
        ("The web-page 'rebuild' button was pressed by 'alice'", "main",
         ["windows"], "alice@example.org", [5]),
        ("The SingleBranchScheduler scheduler named 'main' triggered this build", "main",
         ["linux-gcc", "linux-clang", "macos", "windows", "docs"], "erin@example.org", [0, 0, None, None, 0]),
        ("The SingleBranchScheduler scheduler named 'main' triggered this build", "feature/login",
         ["linux-gcc", "linux-clang", "macos"], "frank@example.org", [None, "-", "-"]),
        ("The web-page 'force' button was pressed by 'bob'", "release/2.x",
         ["linux-gcc", "windows"], "bob@example.org", ["-", "-"]),
    ]
    worst = [0, 1, 3, 2, 4, 5, 6]  # Buildbot's order of badness: SUCCESS, WARNINGS, SKIPPED, FAILURE, ...
    out = []
    for i, (reason, branch, names, owner, results) in enumerate(plan):
        ids = [builders[n] for n in names]
        bsid, brids = yield db.buildsets.addBuildset(
            sourcestamps=[{"branch": branch, "revision": hashlib.sha1(b"showcase %d" % i).hexdigest(),
                           "repository": "https://github.com/example/widget.git", "project": "widget",
                           "codebase": ""}],
            reason=reason,
            properties={"owner": (owner, "Change"), "scheduler": (reason.split("'")[1], "Scheduler")},
            builderids=ids,
            waited_for=False,
        )
        for builderid, result in zip(ids, results):
            if result == "-":
                continue
            buildid, _ = yield db.builds.addBuild(builderid, brids[builderid], workerid, masterid, "building")
            if result is None:
                continue
            yield db.builds.finishBuild(buildid, result)
            if result == 5:  # retried: the request's next build runs
                yield db.builds.addBuild(builderid, brids[builderid], workerid, masterid, "building")
            else:
                yield db.buildrequests.completeBuildRequests([brids[builderid]], result)
        if all(r not in (None, "-", 5) for r in results):
            final = max(results, key=worst.index)
            yield db.buildsets.completeBuildset(bsid, final)
        out.append(bsid)
    return {"bsids": out}


def buildset_json(bs):
    return {
        "bsid": bs.bsid,
        "external_idstring": bs.external_idstring,
        "reason": bs.reason,
        "submitted_at": ts(bs.submitted_at),
        "complete": bs.complete,
        "complete_at": ts(bs.complete_at),
        "results": bs.results,
        "parent_buildid": bs.parent_buildid,
        "parent_relationship": bs.parent_relationship,
        "rebuilt_buildid": bs.rebuilt_buildid,
        "sourcestamps": bs.sourcestamps,
    }


@defer.inlineCallbacks
def dump(db):
    all_bs = yield db.buildsets.getBuildsets()
    out = {"buildsets": [buildset_json(b) for b in all_bs]}
    single = {}
    for b in all_bs:
        single[str(b.bsid)] = buildset_json((yield db.buildsets.getBuildset(b.bsid)))
    out["single"] = single
    out["complete"] = [b.bsid for b in (yield db.buildsets.getBuildsets(complete=True))]
    out["incomplete"] = [b.bsid for b in (yield db.buildsets.getBuildsets(complete=False))]
    recent = {}
    for name, kwargs in {
        "3": {"count": 3},
        "all": {"count": 100},
        "main": {"count": 100, "branch": "main"},
        "repo": {"count": 100, "repository": "git://x"},
        "complete2": {"count": 2, "complete": True},
        "incomplete": {"count": 100, "complete": False},
    }.items():
        recent[name] = [b.bsid for b in (yield db.buildsets.getRecentBuildsets(**kwargs))]
    out["recent"] = recent
    props = {}
    stamps = {}
    requests = {}
    for b in all_bs:
        p = yield db.buildsets.getBuildsetProperties(b.bsid)
        props[str(b.bsid)] = {k: [api_view(v[0]), v[1]] for k, v in p.items()}
        for ssid in b.sourcestamps:
            ss = yield db.sourcestamps.getSourceStamp(ssid)
            patch = None
            if ss.patch is not None:
                patch = {
                    "patchid": ss.patch.patchid,
                    "body": ss.patch.body.decode("utf-8"),
                    "level": ss.patch.level,
                    "author": ss.patch.author,
                    "comment": ss.patch.comment,
                    "subdir": ss.patch.subdir,
                }
            stamps[str(ssid)] = {
                "ssid": ss.ssid,
                "branch": ss.branch,
                "revision": ss.revision,
                "repository": ss.repository,
                "codebase": ss.codebase,
                "project": ss.project,
                "created_at": ts(ss.created_at),
                "patch": patch,
            }
        brs = yield db.buildrequests.getBuildRequests(bsid=b.bsid)
        requests[str(b.bsid)] = sorted(
            (
                {
                    "buildrequestid": r.buildrequestid,
                    "builderid": r.builderid,
                    "buildername": r.buildername,
                    "priority": r.priority,
                    "complete": r.complete,
                    "results": r.results,
                    "submitted_at": ts(r.submitted_at),
                    "complete_at": ts(r.complete_at),
                    "waited_for": r.waited_for,
                }
                for r in brs
            ),
            key=lambda r: r["buildrequestid"],
        )
    out["properties"] = props
    out["sourcestamps"] = stamps
    out["buildrequests"] = requests
    return out


EVERYTHING = """{ buildsets(first: 100) { nodes {
    bsid externalIdstring reason submittedAt complete completeAt results
    parentBuildid parentRelationship rebuiltBuildid sourcestampIds
    sourcestamps { ssid branch revision repository codebase project createdAt
                   patch { patchid level subdir author comment body } }
    properties { name value source }
    buildrequests { buildrequestid builderid priority complete results submittedAt
                    completeAt waitedFor builder { name } } } } }"""


def strict(value):
    """JSON text with types kept: 1 and 1.0 differ (Python's == would say equal)."""
    return json.dumps(value, sort_keys=True)


def epoch_of(text):
    return None if text is None else int(datetime.fromisoformat(text).timestamp())


@defer.inlineCallbacks
def compare(db, api_url, mysql):
    req = urllib.request.Request(api_url, data=json.dumps({"query": EVERYTHING}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        text = resp.read().decode()
    body = json.loads(text)
    if body.get("errors"):
        raise SystemExit(f"the API answered errors: {text}")
    mine = {b["bsid"]: b for b in body["data"]["buildsets"]["nodes"]}
    bad = []

    def check(what, ours, theirs):
        if strict(ours) != strict(theirs):
            bad.append({"what": what, "api": ours, "buildbot": theirs})

    if "serde_json" in text:
        bad.append({"what": "response text", "api": text[:200], "buildbot": None})
    all_bs = yield db.buildsets.getBuildsets()
    check("buildset ids", sorted(mine), sorted(b.bsid for b in all_bs))
    for b in all_bs:
        o = mine.get(b.bsid)
        if o is None:
            continue
        at = f"buildset {b.bsid}"
        check(f"{at} externalIdstring", o["externalIdstring"], b.external_idstring)
        check(f"{at} reason", o["reason"], b.reason)
        check(f"{at} submittedAt", epoch_of(o["submittedAt"]), ts(b.submitted_at))
        check(f"{at} complete", o["complete"], b.complete)
        check(f"{at} completeAt", epoch_of(o["completeAt"]), ts(b.complete_at))
        check(f"{at} results", o["results"], b.results if b.complete else None)
        check(f"{at} parentBuildid", o["parentBuildid"], b.parent_buildid)
        check(f"{at} parentRelationship", o["parentRelationship"], b.parent_relationship)
        check(f"{at} rebuiltBuildid", o["rebuiltBuildid"], b.rebuilt_buildid)
        # Buildbot reads a buildset's stamps without ORDER BY: by id on MySQL.
        order = sorted if mysql else list
        check(f"{at} sourcestamps", order(o["sourcestampIds"]), order(b.sourcestamps))
        props = yield db.buildsets.getBuildsetProperties(b.bsid)
        check(f"{at} properties", {p["name"]: [p["value"], p["source"]] for p in o["properties"]},
              {k: [api_view(v[0]), v[1]] for k, v in props.items()})
        for os_ in o["sourcestamps"]:
            ss = yield db.sourcestamps.getSourceStamp(os_["ssid"])
            st = f"{at} sourcestamp {ss.ssid}"
            for key in ("branch", "revision", "repository", "codebase", "project"):
                check(f"{st} {key}", os_[key], getattr(ss, key))
            check(f"{st} createdAt", epoch_of(os_["createdAt"]), ts(ss.created_at))
            theirs = None
            if ss.patch is not None:
                theirs = {"patchid": ss.patch.patchid, "level": ss.patch.level, "subdir": ss.patch.subdir,
                          "author": ss.patch.author, "comment": ss.patch.comment,
                          "body": ss.patch.body.decode("utf-8")}
            check(f"{st} patch", os_["patch"], theirs)
        brs = yield db.buildrequests.getBuildRequests(bsid=b.bsid)
        check(f"{at} buildrequests", sorted(
            ({"buildrequestid": r["buildrequestid"], "builderid": r["builderid"], "builder": r["builder"]["name"],
              "priority": r["priority"], "complete": r["complete"], "results": r["results"],
              "submittedAt": epoch_of(r["submittedAt"]), "completeAt": epoch_of(r["completeAt"]),
              "waitedFor": r["waitedFor"]} for r in o["buildrequests"]), key=lambda r: r["buildrequestid"]),
            sorted(({"buildrequestid": r.buildrequestid, "builderid": r.builderid, "builder": r.buildername,
                     "priority": r.priority, "complete": r.complete,
                     "results": r.results if r.complete else None,
                     "submittedAt": ts(r.submitted_at), "completeAt": ts(r.complete_at),
                     "waitedFor": r.waited_for} for r in brs), key=lambda r: r["buildrequestid"]))
    return {"compared": len(all_bs), "mismatches": bad}


def schema(url):
    # storage_engine is Buildbot's own URL option, not SQLAlchemy's.
    engine = sa.create_engine(url.replace("?storage_engine=InnoDB", "").replace("&storage_engine=InnoDB", ""))
    insp = sa.inspect(engine)
    out = {}
    for t in TABLES:
        cols = [
            {
                "name": c["name"],
                "type": str(c["type"]),
                "nullable": c["nullable"],
                "default": None if c.get("default") is None else str(c["default"]).strip("'()"),
            }
            for c in insp.get_columns(t)
        ]
        idx = sorted(
            [{"name": i["name"], "columns": i["column_names"], "unique": bool(i["unique"])} for i in insp.get_indexes(t)],
            key=lambda i: i["name"],
        )
        fks = sorted(
            [
                {
                    "columns": f["constrained_columns"],
                    "table": f["referred_table"],
                    "referred": f["referred_columns"],
                    "ondelete": (f.get("options") or {}).get("ondelete"),
                }
                for f in insp.get_foreign_keys(t)
            ],
            key=lambda f: f["columns"],
        )
        pk = insp.get_pk_constraint(t)["constrained_columns"]
        out[t] = {"columns": cols, "indexes": idx, "foreign_keys": fks, "primary_key": pk}
    engine.dispose()
    return out


def sqlalchemy_url(url):
    """Our URLs to SQLAlchemy's (psycopg2 is the driver pinned here)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    if url.startswith("mysql://"):
        # Buildbot defaults to MyISAM; its documentation recommends InnoDB, the only
        # engine with transactions (which this server's guarantees rely on).
        rest = url[len("mysql://"):]
        sep = "&" if "?" in rest else "?"
        return "mysql+pymysql://" + rest + sep + "storage_engine=InnoDB"
    if url.startswith("sqlite://"):
        # Ours is sqlite://<absolute path>?options; SQLAlchemy's is sqlite:///<absolute path>.
        path = url[len("sqlite://"):].split("?")[0]
        return "sqlite:///" + path if path.startswith("/") else "sqlite:///" + path
    return url


def main(reactor, argv):
    command, url, *args = argv
    url = sqlalchemy_url(url)

    @defer.inlineCallbacks
    def run():
        if command == "schema":
            return schema(url)
        db = yield connect(reactor, url)
        try:
            if command == "create":
                yield db.model.upgrade()
                return {"created": True}
            if command == "populate":
                return (yield populate(db))
            if command == "showcase":
                return (yield showcase(db))
            if command == "dump":
                return (yield dump(db))
            if command == "find-ss":
                return {"ssid": (yield db.sourcestamps.findSourceStampId(**json.loads(args[0])))}
            if command == "compare":
                return (yield compare(db, args[0], url.startswith("mysql")))
            if command == "add":
                builderid = yield db.builders.findBuilderId("bb-live")
                bsid, brids = yield db.buildsets.addBuildset(
                    sourcestamps=[{"branch": args[0], "revision": None, "repository": "r",
                                   "project": "", "codebase": ""}],
                    reason="added by Buildbot",
                    properties={"owner": ("buildbot", "Scheduler")},
                    builderids=[builderid],
                    waited_for=False,
                )
                return {"bsid": bsid, "brids": {str(k): v for k, v in brids.items()}}
            if command == "complete":
                yield db.buildsets.completeBuildset(int(args[0]), int(args[1]))
                return {"completed": int(args[0])}
            if command == "find-builder":
                return {"builderid": (yield db.builders.findBuilderId(args[0]))}
            raise SystemExit(f"unknown command {command}")
        finally:
            yield db.pool.stop()

    d = run()
    d.addCallback(lambda out: print(json.dumps(out, sort_keys=True)))
    return d


if __name__ == "__main__":
    # Alembic's deprecation notices are about Buildbot's own config file, not ours.
    warnings.simplefilter("ignore", DeprecationWarning)
    task.react(main, [sys.argv[1:]])
