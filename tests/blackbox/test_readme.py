"""The README's examples, run as a reader runs them: the curl block copied out of
README.md verbatim (only the port changed), twice in a row, on a fresh database
and then on the used one; every answer is JSON without errors and ends with a
newline."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_block():
    text = README.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    [block] = [b for b in blocks if b.startswith("# register builders")]
    return block


def tools():
    missing = [t for t in ("curl", "jq", "bash") if not shutil.which(t)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing: .ci/run installs them")
        pytest.skip(f"the README's examples need {missing}")


def run(block, port):
    script = "set -euo pipefail\n" + block.replace("localhost:8080", f"localhost:{port}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    answers = done.stdout + done.stderr
    # Every answer ends with a newline, so that each is a line of its own.
    lines = [l for l in answers.splitlines() if l.strip()]
    bodies = [json.loads(l) for l in lines]
    return bodies


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_curl_examples_run_twice(start, backend):
    tools()
    srv = start(backend, "--poll-interval-ms", "50")
    block = curl_block()
    for round_ in (1, 2):
        bodies = run(block, srv.port)
        for b in bodies:
            assert "errors" not in b, (round_, b)
        assert len(bodies) == 4, bodies
        by = {next(iter(b["data"])): b for b in bodies}
        added, completed, cancelled, read = (by[k] for k in ("addBuildset", "completeBuildset",
                                                             "cancelBuildset", "buildset"))
        assert set(added["data"]["addBuildset"]) == {"bsid", "brids"}
        assert len(added["data"]["addBuildset"]["brids"]) == 2
        bsid = added["data"]["addBuildset"]["bsid"]
        assert completed["data"]["completeBuildset"] == {
            "bsid": bsid, "complete": True, "completeAt": completed["data"]["completeBuildset"]["completeAt"],
            "results": 0}
        assert cancelled["data"]["cancelBuildset"]["results"] == 6
        assert read == {"data": {"buildset": {"reason": "pushed to main", "complete": True, "results": 0}}}
    # Two rounds: four buildsets, two builders.
    counts = srv.ok("{ buildsets { totalCount } builders { name } }")
    assert counts["buildsets"]["totalCount"] == 4
    assert sorted(b["name"] for b in counts["builders"]) == ["linux", "mac"]
