"""The log: one line per failed request, JSON on request, no colour codes in a file,
and never a token or a property value."""

import json

import pytest

from conftest import ADD


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines(start, fmt):
    srv = start("sqlite", "--log-format", fmt, "--write-token", "TOKEN-XYZ")
    inp = {"reason": "r", "sourcestamps": [{"stamp": {"branch": "b"}}], "builderids": [999],
           "properties": [{"name": "p", "value": "SECRET-VALUE", "source": "s"}]}
    code, _, _ = srv.err(ADD, {"in": inp}, token="TOKEN-XYZ")
    assert code == "BAD_USER_INPUT"
    log = srv.output()
    assert "\x1b[" not in log, "colour codes in a file"
    assert "TOKEN-XYZ" not in log and "SECRET-VALUE" not in log
    # SQLite was configured (memory statistics off) before it started; the server
    # says so when that call comes too late.
    assert "memory statistics" not in log, log
    lines = [l for l in log.splitlines() if "BAD_USER_INPUT" in l]
    assert len(lines) == 1, log
    if fmt == "json":
        entry = json.loads(lines[0])
        fields = entry["fields"]
        assert fields["message"] == "request" and fields["outcome"] == "BAD_USER_INPUT"
        assert fields["request_id"] and fields["duration_ms"] >= 0 and fields["transport"] == "Post"
        for l in log.splitlines():
            if l.startswith("{"):
                json.loads(l)
