"""Texts a backend cannot store are refused alike, naming the field; nothing is
truncated or replaced. MariaDB attached to tables Buildbot created in `utf8`
(3-byte), as its connector does, cannot hold characters outside the Basic
Multilingual Plane: those are BAD_USER_INPUT (they were stored as `?`, two branches
becoming one). A text longer than a MySQL TEXT column (64 KiB) is refused on every
backend (MariaDB stored a builder name truncated, hashed in full)."""

import subprocess
import urllib.parse

import pytest

from conftest import ADD, fresh_name, required_env
from test_subscriptions import buildbot


def utf8_mysql_database():
    """A MariaDB database created in `utf8` with Buildbot 4.3's own schema."""
    parts, name = fresh_name(required_env("TEST_MYSQL_URL"))
    subprocess.run(
        ["mysql", "-uroot", "-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306),
         "-e", f"CREATE DATABASE `{name}` CHARACTER SET utf8 COLLATE utf8_general_ci"],
        check=True,
    )
    url = urllib.parse.urlunsplit(parts._replace(path="/" + name))
    buildbot("create", url)
    return url, name


def mysql_rows(name, sql):
    out = subprocess.run(["mysql", "-uroot", "-h127.0.0.1", "-N", "-B", name, "-e", sql],
                         capture_output=True, text=True, check=True)
    return [line.split("\t") for line in out.stdout.splitlines()]


def stamp_input(builder, branch):
    return {"reason": "r", "sourcestamps": [{"stamp": {"repository": "r", "branch": branch}}],
            "builderids": [builder]}


def test_utf8_tables_refuse_what_they_cannot_hold(start):
    url, name = utf8_mysql_database()
    charsets = mysql_rows(name, "SELECT DISTINCT character_set_name FROM information_schema.columns "
                                "WHERE table_schema = DATABASE() AND table_name = 'sourcestamps' "
                                "AND character_set_name IS NOT NULL")
    assert charsets == [["utf8mb3"]], charsets
    srv = start("mysql", db_url=url)
    code, got, e = srv.err('mutation { ensureBuilder(name: "bld-\U0001F600") { name } }')
    assert (code, got) == ("BAD_USER_INPUT", "name"), e
    assert "U+1F600" in e["message"] and "utf8mb3" in e["message"], e
    b = srv.ok('mutation { ensureBuilder(name: "bld-\u00e9\u4e2d") { builderid name } }')["ensureBuilder"]
    assert b["name"] == "bld-\u00e9\u4e2d"
    for field, change in {
        "branch": lambda i: i["sourcestamps"][0]["stamp"].update(branch="feat-\U0001F600"),
        "reason": lambda i: i.update(reason="\U0001F601"),
        "properties.name": lambda i: i.update(properties=[{"name": "\U0001F602", "value": 1, "source": "s"}]),
    }.items():
        inp = stamp_input(b["builderid"], "main")
        change(inp)
        code, got, e = srv.err(ADD, {"in": inp})
        assert (code, got) == ("BAD_USER_INPUT", field), e
    # A property value is JSON text with \\u escapes: any character is kept.
    emoji = "\U0001F600 ok"
    inp = stamp_input(b["builderid"], "feat-\u00e9")
    inp["properties"] = [{"name": "p", "value": emoji, "source": "s"}]
    added = srv.ok(ADD, {"in": inp})["addBuildset"]
    assert added["buildset"]["properties"] == [{"name": "p", "value": emoji, "source": "s"}]
    assert mysql_rows(name, "SELECT branch FROM sourcestamps") == [["feat-\u00e9"]]
    assert mysql_rows(name, "SELECT COUNT(*) FROM buildsets") == [["1"]]
    # Filters and recentBuildsets with such a text: MySQL refuses the comparison.
    q = "query($w: BuildsetFilter) { buildsets(where: $w) { totalCount } }"
    for w in [{"branch": {"eq": "feat-\U0001F600"}}, {"reason": {"contains": "\U0001F600"}}]:
        code, got, e = srv.err(q, {"w": w})
        assert (code, got) == ("BAD_USER_INPUT", "where"), e
    assert srv.ok(q, {"w": {"branch": {"eq": "feat-\u00e9"}}})["buildsets"]["totalCount"] == 1
    code, got, e = srv.err('{ recentBuildsets(count: 5, branch: "\U0001F600") { bsid } }')
    assert (code, got) == ("BAD_USER_INPUT", "branch"), e


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_texts_longer_than_a_text_column_are_refused_alike(start, backend):
    srv = start(backend)
    long_name = "n" * 70000
    code, got, e = srv.err("mutation($n: String!) { ensureBuilder(name: $n) { name } }", {"n": long_name})
    assert (code, got) == ("BAD_USER_INPUT", "name"), e
    # Exactly at the bound is stored and read back whole.
    name = "\u00e9" * (65535 // 2)
    b = srv.ok("mutation($n: String!) { ensureBuilder(name: $n) { builderid name } }", {"n": name})["ensureBuilder"]
    assert b["name"] == name
    again = srv.ok("mutation($n: String!) { ensureBuilder(name: $n) { builderid } }", {"n": name})["ensureBuilder"]
    assert again["builderid"] == b["builderid"]
    big = "v" * 70000
    for field, change in {
        "properties.value": lambda i: i.update(properties=[{"name": "p", "value": big, "source": "s"}]),
        "patch.body": lambda i: i["sourcestamps"][0]["stamp"].update(
            patch={"body": "QUFB" * 17000, "level": 1, "author": "a", "comment": "c"}),
        "patch.comment": lambda i: i["sourcestamps"][0]["stamp"].update(
            patch={"body": "QUFB", "level": 1, "author": "a", "comment": big}),
        "parentRelationship": lambda i: i.update(parentRelationship=big),
    }.items():
        inp = stamp_input(b["builderid"], "main")
        change(inp)
        code, got, e = srv.err(ADD, {"in": inp})
        assert code == "BAD_USER_INPUT" and got.split(".")[0] in (field.split(".")[0], "input"), e
    assert srv.ok("{ buildsets { totalCount } }")["buildsets"]["totalCount"] == 0
    # Just under: a 60,000-character property value is stored and read back.
    inp = stamp_input(b["builderid"], "main")
    inp["properties"] = [{"name": "p", "value": "w" * 60000, "source": "s"}]
    added = srv.ok(ADD, {"in": inp})["addBuildset"]
    assert added["buildset"]["properties"][0]["value"] == "w" * 60000
