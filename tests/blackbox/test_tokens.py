"""Tokens from files, and tokens nobody could present refused at start."""

import subprocess

import pytest

from conftest import BIN


def test_tokens_from_files(start, tmp_path):
    writes = tmp_path / "write-tokens"
    writes.write_text("W1\n# rotated in next week:\n\n  W2  \n")
    read = tmp_path / "read-token"
    read.write_text("# the UI's token\nR\n")
    srv = start("sqlite", "--write-token-file", str(writes), "--read-token-file", str(read))
    q = 'mutation { ensureBuilder(name: "t") { name } }'
    for token in ["W1", "W2"]:
        assert srv.ok(q, token=token) == {"ensureBuilder": {"name": "t"}}
    assert srv.err(q, token="R")[0] == "FORBIDDEN"
    assert srv.err(q, token="W3")[0] == "FORBIDDEN"
    assert srv.err("{ builders { name } }")[0] == "UNAUTHENTICATED"
    assert srv.ok("{ builders { name } }", token="R") == {"builders": [{"name": "t"}]}
    # The tokens are nowhere in the process's arguments.
    with open(f"/proc/{srv.proc.pid}/cmdline", "rb") as f:
        assert b"W1" not in f.read()


@pytest.mark.parametrize("flags, says", [
    (["--write-token="], "empty --write-token"),
    (["--write-token", "a,,b"], "empty --write-token"),
    (["--read-token="], "empty --read-token"),
    (["--listen", "0.0.0.0:0", "--write-token="], "empty --write-token"),
    (["--write-token-file", "/nonexistent/tokens"], "--write-token-file /nonexistent/tokens"),
    (["--read-token", "R", "--read-token-file", "/etc/hostname"], "not both"),
])
def test_unusable_tokens_are_refused_at_start(flags, says, tmp_path):
    listen = [] if "--listen" in flags else ["--listen", "127.0.0.1:0"]
    r = subprocess.run([BIN, "--database-url", f"sqlite://{tmp_path}/db?mode=rwc", *listen, *flags],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r
    assert says in r.stderr and "panicked" not in r.stderr, r.stderr


def test_an_empty_token_file_is_refused(tmp_path):
    empty = tmp_path / "tokens"
    empty.write_text("# nothing yet\n\n")
    r = subprocess.run([BIN, "--database-url", f"sqlite://{tmp_path}/db?mode=rwc", "--listen", "127.0.0.1:0",
                        "--write-token-file", str(empty)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "holds no token" in r.stderr, r.stderr
