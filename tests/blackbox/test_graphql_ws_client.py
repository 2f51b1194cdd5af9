"""The graphql-ws npm client, the protocol's reference client, against the server:
results, request errors as `error`, field errors as `next`, live events, no retry
after 4409 (a fatal close for it), and a reconnect with events again after the
server went away (1001) and came back."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "audit" / "ws-client.mjs"


def node_ready():
    if not (SCRIPT.parent / "node_modules" / "graphql-ws").is_dir() or not shutil.which("node"):
        if os.environ.get("CI"):
            pytest.fail("tests/audit has no node_modules: .ci/run installs them (npm ci)")
        pytest.skip("run `npm ci --prefix tests/audit` (or .ci/run) for the graphql-ws client")


def lines(out):
    return {d["what"]: d for d in map(json.loads, filter(None, out.splitlines()))}


def client(scenario, srv):
    node_ready()
    done = subprocess.run(["node", str(SCRIPT), scenario, srv.base], capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return lines(done.stdout)


def test_results_errors_and_events_reach_the_client_as_the_protocol_says(start):
    srv = start("sqlite", "--poll-interval-ms", "50")
    seen = client("flow", srv)
    assert seen["query"]["seen"] == [{"next": {"data": {"__typename": "Query"}}}, {"complete": True}]
    # A request error is `error`: the client hands the GraphQL errors to `error`.
    [invalid] = seen["invalid"]["seen"]
    assert invalid["error"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", invalid
    # A field error is a result (`next`) with data, then `complete`.
    field = seen["field-error"]["seen"]
    assert field[0]["next"]["data"] is None and field[0]["next"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert field[1] == {"complete": True}
    assert seen["event"]["event"]["data"]["buildsetAdded"]["reason"].startswith("flow-")


def test_a_reused_operation_id_is_closed_with_4409_and_not_retried(start):
    srv = start("sqlite")
    seen = client("duplicate", srv)["duplicate"]
    assert seen["seen"] != "timeout", seen
    errors = [s[-1]["error"] for s in seen["seen"] if "error" in s[-1]]
    assert {"code": 4409, "reason": "Subscriber for same already exists"} in errors, seen
    assert seen["connecting"] == 1, seen


def test_the_client_reconnects_after_a_restart_and_gets_events_again(start):
    node_ready()
    srv = start("sqlite", "--poll-interval-ms", "50", "--shutdown-timeout", "2")
    proc = subprocess.Popen(["node", str(SCRIPT), "restart", srv.base], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = {}
        for line in proc.stdout:
            d = json.loads(line)
            seen[d["what"]] = d
            if d["what"] == "ready-for-restart":
                args = srv.proc.args
                srv.proc.terminate()
                srv.proc.wait(15)
                srv.proc = subprocess.Popen(args, stdout=srv.log, stderr=subprocess.STDOUT)
                deadline = time.time() + 20
                while time.time() < deadline:
                    try:
                        if httpx.get(srv.base + "/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.05)
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        proc.kill()
    assert seen["before"]["event"]["data"]["buildsetAdded"]["reason"].startswith("before-")
    after = seen["after"]
    # Closed with 1001 by the shutdown, then connected again on the client's own.
    assert 1001 in after["closes"] and after["connected"] >= 2, after
    assert after["event"]["data"]["buildsetAdded"]["reason"].startswith("after-"), after
