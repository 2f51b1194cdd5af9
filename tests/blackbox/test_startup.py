"""Start-up errors that say what to do, read from the binary's own output: each names
what was wrong and what to write instead. URLs copied from a Buildbot master.cfg
(SQLAlchemy's `dialect+driver://`) name the same database here."""

import os
import socket
import subprocess
import tempfile
import time

import httpx
import pytest

from conftest import BIN, database, free_port


def fails(*args, cwd=None):
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert out.returncode != 0, out
    return out.stdout + out.stderr


def test_sqlite_file_missing_says_how_to_create_it():
    folder = tempfile.mkdtemp()
    text = fails("--database-url", "sqlite://fresh.db", "--listen", "127.0.0.1:0", cwd=folder)
    assert "at fresh.db:" in text and "add ?mode=rwc" in text and "sqlite://fresh.db?mode=rwc" in text, text
    assert not os.path.exists(os.path.join(folder, "fresh.db"))
    # An absolute path is named (it was an empty location), and a missing folder said.
    text = fails("--database-url", f"sqlite://{folder}/nowhere/abs.db?mode=rwc", "--listen", "127.0.0.1:0")
    assert f"at {folder}/nowhere/abs.db:" in text and f"there is no folder {folder}/nowhere" in text, text


def test_with_json_logs_a_start_up_error_is_a_json_line_too():
    import json
    folder = tempfile.mkdtemp()
    out = subprocess.run([BIN, "--database-url", "sqlite://fresh.db", "--listen", "127.0.0.1:0",
                          "--log-format", "json"], capture_output=True, text=True, timeout=60, cwd=folder)
    assert out.returncode != 0
    lines = [json.loads(l) for l in (out.stdout + out.stderr).splitlines() if l.strip()]
    [error] = [l for l in lines if l["level"] == "ERROR"]
    assert "add ?mode=rwc" in error["message"], error


def test_postgres_errors_without_the_servers_source_lines():
    text = fails("--database-url", "postgres://nosuchuser@127.0.0.1/x", "--listen", "127.0.0.1:0",
                 "--db-connect-timeout", "5")
    assert 'role "nosuchuser" does not exist' in text, text
    assert "at line" not in text, text


def test_listen_takes_names_and_says_what_to_write():
    for bad, why in (("8080", "has no port"), ("no-such-host.invalid:80", "is not an address")):
        text = fails("--listen", bad)
        assert why in text and "127.0.0.1:8080" in text and "localhost:8080" in text, text


def test_listen_on_localhost_serves():
    port = free_port()
    proc = subprocess.Popen([BIN, "--database-url", database("sqlite"), "--listen", f"localhost:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                break
            except httpx.HTTPError:
                import time

                time.sleep(0.1)
        else:
            raise AssertionError("no answer on localhost")
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_port_in_use_is_named():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        text = fails("--database-url", database("sqlite"), "--listen", f"127.0.0.1:{port}")
        assert f"cannot listen on 127.0.0.1:{port}" in text and "--listen" in text, text
    finally:
        holder.close()


def test_an_unknown_database_kind_lists_the_ones_spoken():
    text = fails("--database-url", "oracle://scott@db/orcl")
    assert "postgres://USER@HOST/DB" in text and "mysql://USER@HOST/DB" in text and "sqlite://PATH" in text, text


@pytest.mark.parametrize("scheme", ["postgresql+psycopg2", "postgresql"])
def test_a_master_cfg_postgresql_url_names_the_same_database(start, scheme):
    url = database("postgres")
    theirs = url.replace("postgres://", f"{scheme}://", 1)
    srv = start("postgres", db_url=theirs)
    srv.ok('mutation { ensureBuilder(name: "from-master-cfg") { builderid } }')
    same = start("postgres", db_url=url)
    assert [b["name"] for b in same.ok("{ builders { name } }")["builders"]] == ["from-master-cfg"]


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "mariadb"])
def test_a_master_cfg_mysql_url_names_the_same_database(start, scheme):
    url = database("mysql")
    srv = start("mysql", db_url=url.replace("mysql://", f"{scheme}://", 1))
    srv.ok('mutation { ensureBuilder(name: "from-master-cfg") { builderid } }')
    same = start("mysql", db_url=url)
    assert [b["name"] for b in same.ok("{ builders { name } }")["builders"]] == ["from-master-cfg"]


def test_a_cors_origin_a_browser_would_never_send_is_refused_with_the_one_it_would():
    # An origin is compared with what a browser sends in `Origin`: anything else would
    # never match, so it is refused at start, saying what the browser would send.
    for bad, why in (("https://ui.example.org/", "a trailing slash never matches"),
                     ("http://ui.example.org:80", "a browser would send http://ui.example.org"),
                     ("https://ui.example.org/app", "a browser would send https://ui.example.org"),
                     ("ftp://ui.example.org", "the scheme must be http or https"),
                     ("https://\u00fc.example.org", "punycode")):
        text = fails("--cors-origin", bad, "--database-url", "sqlite::memory:", "--listen", "127.0.0.1:0")
        assert "--cors-origin" in text and why in text, (bad, text)
    # What a browser sends is taken, in any case of letters.
    srv_port = free_port()
    proc = subprocess.Popen([BIN, "--cors-origin", "HTTP://UI.Example.org:8081", "--database-url",
                             "sqlite::memory:", "--listen", f"127.0.0.1:{srv_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                r = httpx.options(f"http://127.0.0.1:{srv_port}/graphql", timeout=1, headers={
                    "origin": "http://ui.example.org:8081", "access-control-request-method": "POST"})
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert r.headers.get("access-control-allow-origin") == "http://ui.example.org:8081", r.headers
    finally:
        proc.terminate()
        proc.wait(10)
