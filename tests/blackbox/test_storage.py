"""Storage faults: writes fail for a while (a file size limit on the server's process
for SQLite, a trigger raising "disk full" on PostgreSQL and MariaDB), then recover.
What a client was told must be what the database holds: every acknowledged bsid is
there with all its rows (seen by a second reader and after a restart), nothing that
was refused is half-written, and no bsid is handed out twice. While writes fail the
client gets UNAVAILABLE with a retry hint and /readyz says 503."""

import sqlite3
import subprocess
import time
import urllib.parse

import pytest

from conftest import Server, database

ADD = """mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid brids { buildrequestid } } }"""


def add(srv, builder, n):
    body = srv.post(ADD, {"in": {
        "reason": f"storage {n}",
        "sourcestamps": [{"stamp": {"repository": "r", "branch": f"b{n}", "revision": f"{n:040x}"}}],
        "builderids": [builder],
        "properties": [{"name": "n", "value": n, "source": "test"}],
    }})
    if "errors" in body:
        return None, body["errors"][0]
    return body["data"]["addBuildset"]["bsid"], None


def builder_of(srv):
    return srv.ok('mutation { ensureBuilder(name: "storage") { builderid } }')["ensureBuilder"]["builderid"]


def prlimit_fsize(pid, soft):
    """The soft limit only: lowering the hard one could not be undone without root's
    CAP_SYS_RESOURCE."""
    subprocess.run(["prlimit", "--pid", str(pid), f"--fsize={soft}:unlimited"], check=True)


def rows_sqlite(path):
    """What a second reader sees: bsid -> (stamp links, requests, properties)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {}
        for (bsid,) in con.execute("SELECT id FROM buildsets"):
            out[bsid] = tuple(
                con.execute(f"SELECT count(*) FROM {t} WHERE buildsetid = ?", (bsid,)).fetchone()[0]
                for t in ("buildset_sourcestamps", "buildrequests", "buildset_properties")
            )
        return out
    finally:
        con.close()


def check_durable(acked, seen):
    assert set(seen) == set(acked), f"acknowledged {sorted(acked)}, stored {sorted(seen)}"
    for bsid in acked:
        assert seen[bsid] == (1, 1, 1), (bsid, seen[bsid])


def read_back(srv, acked):
    for bsid, n in acked.items():
        d = srv.ok("query($b: Int!) { buildset(bsid: $b) { reason buildrequests { buildrequestid } "
                   "property(name: \"n\") { value } } }", {"b": bsid})["buildset"]
        assert d is not None, bsid
        assert d["reason"] == f"storage {n}" and d["property"]["value"] == n
        assert len(d["buildrequests"]) == 1


def recovers(srv, builder, acked, numbers):
    """Writes `numbers` once storage is back: each succeeds at its normal pace with a
    bsid never handed out before (added to `acked`), and /readyz is 200 again.
    Returns every bsid handed out."""
    handed = set(acked)
    for n in numbers:
        t0 = time.monotonic()
        bsid, err = add(srv, builder, n)
        assert err is None, err
        assert bsid not in handed, f"bsid {bsid} handed out twice"
        handed.add(bsid)
        acked[bsid] = n
        # 10 s was the busy timeout of a connection stuck in a transaction that
        # never commits: recovery means writes run at their normal pace.
        assert time.monotonic() - t0 < 5, f"write {n} took {time.monotonic() - t0:.1f} s"
    assert srv.http.get("/readyz").status_code == 200
    return handed


def test_sqlite_writes_failing_for_want_of_space_then_recovering(start):
    srv = start("sqlite")
    builder = builder_of(srv)
    acked = {}
    for n in range(5):
        bsid, err = add(srv, builder, n)
        assert err is None, err
        acked[bsid] = n
    assert srv.http.get("/readyz").status_code == 200

    # Every write past the first 4 KiB of a file now fails (EFBIG; SIGXFSZ must not
    # kill the server).
    prlimit_fsize(srv.proc.pid, 4096)
    refused = 0
    for n in range(5, 15):
        bsid, err = add(srv, builder, n)
        if bsid is not None:
            acked[bsid] = n  # an acknowledged write must be durable, whatever happens
            continue
        refused += 1
        assert err["extensions"]["code"] == "UNAVAILABLE", err
        assert err["extensions"]["retryAfter"] > 0, err
        assert "disk full" in err["message"], err
    assert refused >= 5, "the file size limit did not make writes fail"
    ready = srv.http.get("/readyz")
    assert ready.status_code == 503 and "Retry-After" in ready.headers, (ready.status_code, ready.text)
    assert srv.proc.poll() is None, "the server died of the file size limit"

    prlimit_fsize(srv.proc.pid, "unlimited")
    handed = recovers(srv, builder, acked, range(15, 30))

    # A second reader, while the server runs, then after a restart.
    check_durable(acked, rows_sqlite(srv.db_path))
    read_back(srv, acked)
    url = srv.db_url
    srv.proc.terminate()
    srv.proc.wait(10)
    again = start("sqlite", db_url=url)
    check_durable(acked, rows_sqlite(srv.db_path))
    read_back(again, acked)
    bsid, err = add(again, builder, 99)
    assert err is None and bsid not in handed, (bsid, err)



def mounted_tmpfs(size):
    """A fresh tmpfs of `size` (as mount(8) writes it), or a skip saying why not."""
    import os
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("a tmpfs needs root to mount (the RLIMIT_FSIZE test covers SQLite without it)")
    where = tempfile.mkdtemp(prefix="bsgql-full-")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    return where


def test_sqlite_on_a_full_disk_then_space_freed(start):
    """The disk itself fills (a 4 MB tmpfs filled by another file), then space is
    freed: what was acknowledged is there, the rest is not, and writes recover."""
    import os

    where = mounted_tmpfs("4m")
    try:
        url = f"sqlite://{where}/buildsets.db?mode=rwc"
        srv = start("sqlite", db_url=url)
        builder = builder_of(srv)
        acked = {}
        for n in range(5):
            bsid, err = add(srv, builder, n)
            assert err is None, err
            acked[bsid] = n
        filler = os.path.join(where, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        # SQLite reuses its write-ahead log's space once a checkpoint has run, so on
        # a full disk some writes still pass (seen: --+++++---+++++-+++++-): each is
        # acknowledged only once committed, and each refusal is UNAVAILABLE.
        refused, ready_while_failing = 0, set()
        for n in range(5, 40):
            bsid, err = add(srv, builder, n)
            if bsid is not None:
                acked[bsid] = n
                continue
            refused += 1
            assert err["extensions"]["code"] == "UNAVAILABLE", err
            assert err["extensions"]["retryAfter"] > 0, err
            ready_while_failing.add(srv.http.get("/readyz").status_code)
        assert refused >= 5, "the full disk did not make writes fail"
        assert ready_while_failing == {503}, ready_while_failing
        assert srv.proc.poll() is None

        os.remove(filler)
        recovers(srv, builder, acked, range(40, 55))
        check_durable(acked, rows_sqlite(f"{where}/buildsets.db"))
        read_back(srv, acked)
        srv.stop()
        again = start("sqlite", db_url=url)
        check_durable(acked, rows_sqlite(f"{where}/buildsets.db"))
        read_back(again, acked)
        again.stop()
    finally:
        subprocess.run(["umount", "-l", where], capture_output=True)


# What each database says when it is out of space, raised by a trigger on the last
# table an addBuildset writes, so that earlier rows of the transaction exist.
TRIGGERS = {
    "postgres": [
        "CREATE TABLE fault_switch (on_ boolean NOT NULL)",
        "INSERT INTO fault_switch VALUES (false)",
        """CREATE FUNCTION fault_full() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF (SELECT on_ FROM fault_switch) THEN
               RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100';
             END IF;
             RETURN NEW;
           END $$""",
        """CREATE TRIGGER fault_full BEFORE INSERT ON buildrequests
           FOR EACH ROW EXECUTE FUNCTION fault_full()""",
    ],
    "mysql": [
        "CREATE TABLE fault_switch (on_ boolean NOT NULL) ENGINE=InnoDB",
        "INSERT INTO fault_switch VALUES (false)",
        """CREATE TRIGGER fault_full BEFORE INSERT ON buildrequests FOR EACH ROW
           BEGIN
             IF (SELECT on_ FROM fault_switch) THEN
               SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1021, MESSAGE_TEXT = 'Disk full';
             END IF;
           END""",
    ],
}


def sql(backend, url, statement):
    parts = urllib.parse.urlsplit(url)
    if backend == "postgres":
        out = subprocess.run(["psql", url.split("?")[0], "-Atqc", statement],
                             check=True, capture_output=True, text=True)
    else:
        out = subprocess.run(
            ["mysql", "-uroot", "-h", parts.hostname, "-P", str(parts.port or 3306), "-N", "-B", "--delimiter=//",
             parts.path.lstrip("/"), "-e", statement],
            check=True, capture_output=True, text=True)
    return out.stdout


def rows_sql(backend, url):
    out = {}
    for line in sql(backend, url, """SELECT b.id,
        (SELECT count(*) FROM buildset_sourcestamps s WHERE s.buildsetid = b.id),
        (SELECT count(*) FROM buildrequests r WHERE r.buildsetid = b.id),
        (SELECT count(*) FROM buildset_properties p WHERE p.buildsetid = b.id)
        FROM buildsets b""").split("\n"):
        if line.strip():
            cols = [int(c) for c in line.replace("|", "\t").split("\t")]
            out[cols[0]] = tuple(cols[1:])
    return out


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_sql_writes_failing_for_want_of_space_then_recovering(start, backend):
    url = database(backend)
    srv = start(backend, db_url=url)
    builder = builder_of(srv)
    for statement in TRIGGERS[backend]:
        sql(backend, url, statement)
    acked = {}
    for n in range(3):
        bsid, err = add(srv, builder, n)
        assert err is None, err
        acked[bsid] = n

    sql(backend, url, "UPDATE fault_switch SET on_ = true")
    for n in range(3, 8):
        bsid, err = add(srv, builder, n)
        assert bsid is None, f"acknowledged {bsid} while the database refused every write"
        assert err["extensions"]["code"] == "UNAVAILABLE", err
        assert err["extensions"]["retryAfter"] > 0, err
    assert srv.http.get("/readyz").status_code == 503
    check_durable(acked, rows_sql(backend, url))  # nothing half-written

    sql(backend, url, "UPDATE fault_switch SET on_ = false")
    handed = set(acked)
    for n in range(8, 14):
        bsid, err = add(srv, builder, n)
        assert err is None, err
        assert bsid not in handed
        handed.add(bsid)
        acked[bsid] = n
    assert srv.http.get("/readyz").status_code == 200
    check_durable(acked, rows_sql(backend, url))
    srv.proc.terminate()
    srv.proc.wait(10)
    again = start(backend, db_url=url)
    read_back(again, acked)
