"""Shared by seed.py and writes.py: Buildbot 4.3's own database connector, driven from a
script the way tests/interop/bb.py does it (a stub master, DBConnector, DBConfig)."""

import atexit
import math
import shutil
import tempfile
import warnings

from twisted.internet import defer

from buildbot.config.master import DBConfig
from buildbot.db.connector import DBConnector

# Alembic's deprecation notices are about Buildbot's own config file, not ours.
warnings.simplefilter("ignore", DeprecationWarning)


def sqlalchemy_url(url):
    """Our server's URLs (postgres://..., sqlite:///abs/path.db?mode=rwc, mysql://...) to
    SQLAlchemy's, as tests/interop/bb.py converts them (psycopg2 / PyMySQL drivers)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):].split("?")[0]
    if url.startswith("mysql://"):
        rest = url[len("mysql://"):]
        sep = "&" if "?" in rest else "?"
        return "mysql+pymysql://" + rest + sep + "storage_engine=InnoDB"
    if url.startswith("sqlite://"):
        # Ours is sqlite://<absolute path>?options; SQLAlchemy's is sqlite:///<absolute path>.
        path = url[len("sqlite://"):].split("?")[0]
        return "sqlite:///" + path
    return url


class NoCache:
    """No read caching: these scripts write, and must not serve stale reads."""

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
        self.basedir = tempfile.mkdtemp(prefix="bb-bench-")
        atexit.register(shutil.rmtree, self.basedir, True)
        self.config = type("Config", (), {"changeHorizon": None})()
        self.db_url = url


@defer.inlineCallbacks
def connect(reactor, url):
    """A set-up DBConnector on `url` (already SQLAlchemy's form)."""
    master = Master(reactor, url)
    db = DBConnector(master.basedir)
    db.configured_db_config = DBConfig(db_url=url)
    yield db.set_master(master)
    master.db = db
    yield db.setup(check_version=False, verbose=False)
    return db


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]
