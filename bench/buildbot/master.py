"""Run a stock Buildbot 4.3 master with its web UI and REST API (/api/v2) over a database.

  1. `buildbot create-master --db URL DIR` when DIR has no buildbot.tac yet (it creates the
     schema if absent; Buildbot's upgrade never wipes rows, so a seeded database is kept);
  2. writes DIR/master.cfg: attached to URL (c['db'] = {'db_url': ...}), builders
     builder-0 .. builder-9 with a one-step dummy factory on a worker that never connects
     (so nothing is ever built and the builder rows match seed.py's), a ForceScheduler only,
     c['www'] on 127.0.0.1:PORT with buildbot-www's UI, the PB port on loopback too;
  3. `buildbot upgrade-master DIR` (checks the config, upgrades the schema if needed);
  4. `buildbot start --nodaemon DIR` as a child, polls http://127.0.0.1:PORT/api/v2/builders
     until it answers, then prints one JSON line {"ready": true, ...}.

It stays in the foreground until killed (SIGTERM / SIGINT stop the master cleanly).
The master's own log is DIR/twistd.log; its HTTP access log DIR/http.log.

One deviation from stock Buildbot 4.3, on by default (--stock-rest-writes turns it off):
master.cfg replaces buildbot.www.rest.V2RootResource._write_json_data, which calls Twisted's
request.write() from a worker thread (not thread-safe): under concurrent load some REST
answers stop a few KB short and hang until Twisted's 60 s idle timeout. The replacement
still encodes in the worker thread but writes the whole body from the reactor thread.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bbconn import sqlalchemy_url  # noqa: E402

MASTER_CFG = """\
# Written by bench/buildbot/master.py: a stock Buildbot 4.3 master for REST baselines.
from buildbot.plugins import schedulers, steps, util, worker

c = BuildmasterConfig = {{}}
# A worker that never connects: nothing is ever built, pending requests stay pending.
c['workers'] = [worker.Worker('bench-worker', 'never-connects')]
c['protocols'] = {{'pb': {{'port': 'tcp:{pb}:interface=127.0.0.1'}}}}
factory = util.BuildFactory()
factory.addStep(steps.ShellCommand(command=['true']))
c['builders'] = [
    util.BuilderConfig(name='builder-%d' % i, workernames=['bench-worker'], factory=factory)
    for i in range(10)
]
# Buildbot wants a scheduler for every builder; this one only fires from the UI / API.
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['builder-%d' % i for i in range(10)])]
c['collapseRequests'] = False
c['db'] = {{'db_url': {db!r}}}
c['www'] = {{'port': 'tcp:{port}:interface=127.0.0.1', 'plugins': {{}}}}
c['buildbotURL'] = 'http://127.0.0.1:{port}/'
c['title'] = 'bb baseline'
c['buildbotNetUsageData'] = None
{fix}"""

# Buildbot 4.3 encodes REST answers in a worker thread and calls request.write() from that
# thread, chunk by chunk (buildbot/www/rest.py, V2RootResource._write_json_data). Twisted
# transports are not thread-safe: under concurrent load some answers stop short and hang
# until the connection's 60 s idle timeout. This keeps the encoding in the thread and hands
# the finished body to the reactor thread in one write. --stock-rest-writes leaves it out.
WRITE_FIX = """
# bench/buildbot/master.py: thread-safe REST writes (see master.py).
from buildbot.www import rest as _rest
from twisted.internet import reactor as _reactor, threads as _threads


def _write_json_data(request, encoder, data):
    body = ''.join(encoder.iterencode(data)).encode('utf-8')

    def write():
        if _rest._is_request_finished(request):
            return
        request.setHeader(b'content-length', str(len(body)).encode())
        if request.method != b'HEAD':
            request.write(body)

    _threads.blockingCallFromThread(_reactor, write)


_rest.V2RootResource._write_json_data = staticmethod(_write_json_data)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name):
    """The buildbot script next to this interpreter (the venv's)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else name


def run(*cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}\n")
        raise SystemExit(1)


def main():
    p = argparse.ArgumentParser(
        description="Start a Buildbot 4.3 master (web UI + REST API on 127.0.0.1:PORT) over a database, "
                    "in the foreground until killed; prints a JSON line when the API answers.",
        epilog="URL: postgres://postgres@127.0.0.1:5432/NAME or sqlite:///abs/path.db?mode=rwc")
    p.add_argument("url", metavar="URL", help="database URL (this server's form)")
    p.add_argument("--port", type=int, required=True, help="HTTP port of the web UI / REST API")
    p.add_argument("--basedir", required=True, help="master directory (created when missing)")
    p.add_argument("--pb-port", type=int, default=None, help="worker (PB) port; default: a free one")
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait for the API (default 180)")
    p.add_argument("--stock-rest-writes", action="store_true",
                   help="leave Buildbot 4.3's REST writes as they are: request.write() from a worker thread, "
                        "which under concurrent load leaves some answers hanging until a 60 s timeout "
                        "(default: hand them to the reactor thread)")
    args = p.parse_args()

    basedir = os.path.abspath(args.basedir)
    db = sqlalchemy_url(args.url)
    buildbot = tool("buildbot")
    if not os.path.exists(os.path.join(basedir, "buildbot.tac")):
        run(buildbot, "create-master", "--quiet", "--db", db, basedir)
    with open(os.path.join(basedir, "master.cfg"), "w") as f:
        f.write(MASTER_CFG.format(db=db, port=args.port, pb=args.pb_port or free_port(),
                                 fix="" if args.stock_rest_writes else WRITE_FIX))
    run(buildbot, "upgrade-master", "--quiet", basedir)

    t0 = time.monotonic()
    child = subprocess.Popen([buildbot, "start", "--nodaemon", basedir],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    stopping = []

    def stop(signum, _frame):
        # Forward and return: the main thread's wait below sees the master end.
        if not stopping:
            stopping.append(time.monotonic())
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def wait_child():
        while True:
            try:
                return child.wait(timeout=1)
            except subprocess.TimeoutExpired:
                if stopping and time.monotonic() - stopping[0] > 60:
                    child.kill()

    api = f"http://127.0.0.1:{args.port}/api/v2/builders"
    while True:
        if stopping:
            wait_child()
            raise SystemExit(0)
        if child.poll() is not None:
            sys.stderr.write(f"the master exited with {child.returncode}; see {basedir}/twistd.log\n")
            raise SystemExit(1)
        try:
            with urllib.request.urlopen(api, timeout=5) as resp:
                builders = json.loads(resp.read())["builders"]
            if len([b for b in builders if b.get("masterids")]) >= 10:
                break
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() - t0 > args.timeout:
            stop(signal.SIGTERM, None)
            wait_child()
            sys.stderr.write(f"the API did not answer in {args.timeout}s; see {basedir}/twistd.log\n")
            raise SystemExit(1)
        time.sleep(0.25)
    print(json.dumps({"ready": True, "base": f"http://127.0.0.1:{args.port}", "pid": child.pid,
                      "basedir": basedir, "startup_s": round(time.monotonic() - t0, 2),
                      "rest_write_fix": not args.stock_rest_writes}), flush=True)
    rc = wait_child()
    raise SystemExit(0 if stopping else rc)


if __name__ == "__main__":
    main()
