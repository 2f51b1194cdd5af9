"""A field that errors is null in `data` with its error in `errors`, and a non-null
field's error nulls its nearest nullable ancestor (GraphQL spec, "Handling Field
Errors"), on the plain path (src/graphql/fast.rs) and on async-graphql's alike.
async-graphql alone leaves the field out of its object, which Apollo Client reads
as a missing field."""

import json
import sqlite3

from conftest import add_buildset


def post(srv, query, variables=None):
    r = srv.http.post("/graphql", json={"query": query, "variables": variables or {}})
    assert r.status_code == 200, r.text
    return json.loads(r.text)


def with_bad_patch(srv, count=3):
    """`count` buildsets, the second of which has a patch whose stored body is not
    base64 (as a hand-edited or damaged database can hold)."""
    bsids = []
    for i in range(count):
        stamp = {"repository": "r", "branch": f"b{i}",
                 "patch": {"body": f"diff {i}\n", "level": 1, "author": "a", "comment": "c"}}
        bsids.append(add_buildset(srv, sourcestamps=[{"stamp": stamp}])["bsid"])
    db = sqlite3.connect(srv.db_path)
    with db:
        (patchid,) = db.execute(
            "SELECT s.patchid FROM buildset_sourcestamps b JOIN sourcestamps s ON s.id = b.sourcestampid "
            "WHERE b.buildsetid = ?", (bsids[1],)).fetchone()
        db.execute("UPDATE patches SET patch_base64 = '%%% not base64 %%%' WHERE id = ?", (patchid,))
    db.close()
    return bsids


def test_a_nullable_root_field_that_errors_is_null_beside_its_siblings(start):
    srv = start("sqlite")
    body = post(srv, '{ a: buildset(bsid: 1) { bsid } b: node(id: "!!") { id } c: __typename }')
    assert body["data"] == {"a": None, "b": None, "c": "Query"}, body
    assert [e["path"] for e in body["errors"]] == [["b"]]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_non_null_field_nulls_its_nullable_parent_on_both_paths(start):
    srv = start("sqlite")
    bsids = with_bad_patch(srv)
    plain = "query($b: Int!) { buildset(bsid: $b) { bsid sourcestamps { branch patch { level body } } } }"
    frag = ("query($b: Int!) { buildset(bsid: $b) { bsid sourcestamps { ... on SourceStamp { branch "
            "patch { ...P } } } } } fragment P on Patch { level body }")
    answers = []
    for query in (plain, frag):
        body = post(srv, query, {"b": bsids[1]})
        # body is String!: its error nulls the nullable `patch`, and no further.
        assert body["data"] == {"buildset": {"bsid": bsids[1], "sourcestamps": [
            {"branch": "b1", "patch": None}]}}, body
        (error,) = body["errors"]
        assert error["path"] == ["buildset", "sourcestamps", 0, "patch", "body"]
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        answers.append(body["data"])
    assert answers[0] == answers[1]
    # A healthy patch is untouched.
    body = post(srv, plain, {"b": bsids[0]})
    assert "errors" not in body
    assert body["data"]["buildset"]["sourcestamps"][0]["patch"] == {"level": 1, "body": "diff 0\n"}


def test_inside_lists_only_the_broken_item_is_nulled(start):
    srv = start("sqlite")
    bsids = with_bad_patch(srv)
    plain = "{ buildsets(first: 10) { nodes { bsid sourcestamps { patch { level body } } } } }"
    frag = "{ buildsets(first: 10) { nodes { ... on Buildset { bsid sourcestamps { patch { ... on Patch { level body } } } } } } }"
    for query in (plain, frag):
        body = post(srv, query)
        nodes = body["data"]["buildsets"]["nodes"]
        patches = {n["bsid"]: n["sourcestamps"][0]["patch"] for n in nodes}
        assert patches == {bsids[0]: {"level": 1, "body": "diff 0\n"}, bsids[1]: None,
                           bsids[2]: {"level": 1, "body": "diff 2\n"}}, body
        broken = [n["bsid"] for n in nodes].index(bsids[1])
        (error,) = body["errors"]
        assert error["path"] == ["buildsets", "nodes", broken, "sourcestamps", 0, "patch", "body"]


def test_a_non_null_list_that_errors_nulls_up_through_non_null_items(start):
    # 64 bytes are charged per listed object against --max-response-bytes: three
    # sourcestamps (192) are over a bound of 100, so `sourcestamps` ([SourceStamp!]!)
    # errors, and its null goes up to the nullable `buildset`.
    srv = start("sqlite", "--max-response-bytes", "100")
    stamps = [{"stamp": {"repository": f"r{i}"}} for i in range(3)]
    bsid = add_buildset(srv, sourcestamps=stamps)["bsid"]
    for sel in ("bsid sourcestamps { ssid }", "... on Buildset { bsid sourcestamps { ssid } }"):
        body = post(srv, f"{{ buildset(bsid: {bsid}) {{ {sel} }} one: __typename }}")
        assert body["data"] == {"buildset": None, "one": "Query"}, body
        (error,) = body["errors"]
        assert error["path"] == ["buildset", "sourcestamps"]
        assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    # Through a list of non-null items up to a non-null root: `data` itself is null.
    body = post(srv, "{ buildsets { nodes { sourcestamps { ssid } } } }")
    assert body["data"] is None, body
    assert body["errors"][0]["path"] == ["buildsets", "nodes", 0, "sourcestamps"]
