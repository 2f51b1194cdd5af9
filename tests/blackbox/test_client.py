"""What a client sees, read with Python's json and raw response text."""

import json
import sqlite3
import time
from datetime import datetime, timezone

import pytest

from conftest import ADD, add_buildset

INTROSPECTION = """
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) {
    name description args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  } } } } } } } } }
}
"""

PROPS_QUERY = """query($b: Int!) {
  buildset(bsid: $b) { properties { name value source } n: property(name: "n") { value } }
  buildsetProperties(bsid: $b) { name value }
}"""

VALUES = {
    "int": 3,
    "float": 1.0,
    "neg": -7,
    "half": 2.5,
    "huge_float": 1e300,
    "tiny": 1.5e-05,
    "max_i64": 9223372036854775807,
    "min_i64": -9223372036854775808,
    "max_u64": 18446744073709551615,
    "list": [1, 2, [3, 4.0]],
    "dict": {"n": 3, "f": 0.5, "deep": {"x": [{"y": 1}]}},
    "str": "3",
    "null": None,
    "bool": True,
}


def same(a, b):
    """Equal as JSON, types included (Python's 1 == 1.0 would hide a float)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_property_numbers_are_exact(server):
    props = [{"name": k, "value": v, "source": "S"} for k, v in VALUES.items()]
    added = add_buildset(server, props)
    resp = server.post_raw(PROPS_QUERY, {"b": added["bsid"]})
    assert "serde_json" not in resp.text
    assert '"value":3,' in resp.text.replace(" ", "")
    data = json.loads(resp.text)["data"]
    got = {p["name"]: p["value"] for p in data["buildset"]["properties"]}
    for name, value in VALUES.items():
        assert same(got[name], value), (name, got[name], value)
    assert type(got["int"]) is int and type(got["float"]) is float
    assert {p["name"]: p["value"] for p in data["buildsetProperties"]} == got
    assert data["buildset"]["n"] is None
    # The mutation's own payload shows them the same way.
    mine = {p["name"]: p["value"] for p in added["buildset"]["properties"]}
    assert all(same(mine[k], got[k]) for k in VALUES)


def test_property_literals_are_exact(server):
    builder = server.ok('mutation { ensureBuilder(name: "lit") { builderid } }')["ensureBuilder"]["builderid"]
    q = (
        'mutation { addBuildset(input: {reason: "lit", sourcestamps: [{stamp: {branch: "b"}}], '
        f"builderids: [{builder}], "
        'properties: [{name: "n", value: 3, source: "s"}, {name: "f", value: 1.0, source: "s"}, '
        '{name: "o", value: {a: [1, 2.5, -3], b: {c: 1e3}}, source: "s"}]}) '
        '{ buildset { property(name: "o") { value } properties { name value } } } }'
    )
    resp = server.post_raw(q)
    body = json.loads(resp.text)
    assert "errors" not in body, body
    props = {p["name"]: p["value"] for p in body["data"]["addBuildset"]["buildset"]["properties"]}
    assert same(props["n"], 3) and same(props["f"], 1.0)
    assert same(props["o"], {"a": [1, 2.5, -3], "b": {"c": 1000.0}})
    assert same(body["data"]["addBuildset"]["buildset"]["property"]["value"], props["o"])


def count_buildsets(srv):
    return srv.ok("{ buildsets { totalCount } }")["buildsets"]["totalCount"]


def test_wide_integers_are_refused_not_rounded(server):
    before = count_buildsets(server)
    builder = server.ok('mutation { ensureBuilder(name: "w") { builderid } }')["ensureBuilder"]["builderid"]
    inp = {
        "reason": "wide",
        "sourcestamps": [{"stamp": {"branch": "b"}}],
        "builderids": [builder],
        "properties": [{"name": "ok", "value": 1, "source": "s"},
                       {"name": "big", "value": {"x": [123456789012345678901234567890]}, "source": "s"}],
    }
    # The raw text, so that Python's json cannot be the one to change the number.
    body = json.dumps({"query": ADD, "variables": {"in": inp}})
    resp = server.http.post("/graphql", content=body, headers={"content-type": "application/json"})
    e = json.loads(resp.text)["errors"][0]
    assert e["extensions"]["code"] == "BAD_USER_INPUT"
    assert e["extensions"]["field"] == "in.properties.1.value.x.0"
    literal = ADD.replace("$in: AddBuildsetInput!", "").replace("(input: $in)", (
        '(input: {reason: "w", sourcestamps: [{stamp: {branch: "b"}}], builderids: [], '
        'properties: [{name: "big", value: -99999999999999999999999, source: "s"}]})'
    )).replace("mutation()", "mutation")
    # A literal of the document: its validation fails, as for any literal of the wrong type.
    code, field, e = server.err(literal)
    assert code == "GRAPHQL_VALIDATION_FAILED" and e["locations"][0]["line"] >= 1
    assert count_buildsets(server) == before


def test_nan_and_infinity_written_by_python_read_as_strings(start):
    srv = start("sqlite")
    bsid = add_buildset(srv)["bsid"]
    db = sqlite3.connect(srv.db_path)
    for name, value in [("nan", float("nan")), ("inf", float("inf")), ("ninf", float("-inf")),
                        ("wide", 123456789012345678901234567890), ("mixed", [float("nan"), 1, "NaN"])]:
        # Buildbot stores json.dumps([value, source]), which writes NaN and Infinity.
        db.execute("INSERT INTO buildset_properties VALUES (?, ?, ?)",
                   (bsid, name, json.dumps([value, "Python"])))
    db.commit()
    db.close()
    props = {p["name"]: p["value"] for p in srv.ok(PROPS_QUERY, {"b": bsid})["buildset"]["properties"]}
    assert props["nan"] == "NaN" and props["inf"] == "Infinity" and props["ninf"] == "-Infinity"
    assert props["wide"] == "123456789012345678901234567890"
    assert props["mixed"] == ["NaN", 1, "NaN"]


def keys(obj):
    return list(obj.keys())


def test_responses_come_in_query_order(server):
    add_buildset(server)
    q = """query Ordered {
      zBuilders: builders { name builderid }
      buildsets(first: 5) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes { reason bsid ...More }
      }
      aBuilders: builders { builderid name }
      builders { description name }
    }
    fragment More on Buildset { sourcestamps { branch ssid } submittedAt complete }"""
    for _ in range(30):
        data = json.loads(server.post_raw(q).text)["data"]
        assert keys(data) == ["zBuilders", "buildsets", "aBuilders", "builders"]
        assert keys(data["buildsets"]) == ["totalCount", "pageInfo", "nodes"]
        assert keys(data["buildsets"]["pageInfo"]) == ["hasNextPage", "endCursor"]
        node = data["buildsets"]["nodes"][0]
        assert keys(node) == ["reason", "bsid", "sourcestamps", "submittedAt", "complete"]
        assert keys(node["sourcestamps"][0]) == ["branch", "ssid"]
        assert keys(data["zBuilders"][0]) == ["name", "builderid"]
        assert keys(data["aBuilders"][0]) == ["builderid", "name"]


def test_new_sourcestamp_is_dated_when_written(server):
    before = time.time()
    bsid = add_buildset(server, submittedAt="2001-02-03T04:05:06Z")["bsid"]
    bs = server.ok("query($b: Int!) { buildset(bsid: $b) { submittedAt sourcestamps { createdAt } } }", {"b": bsid})["buildset"]
    assert bs["submittedAt"].startswith("2001-02-03T04:05:06")
    created = datetime.fromisoformat(bs["sourcestamps"][0]["createdAt"]).timestamp()
    assert before - 2 <= created <= time.time() + 2


def test_standard_introspection_passes_and_deep_queries_do_not(start):
    srv = start("sqlite")
    data = srv.ok(INTROSPECTION)
    names = {t["name"] for t in data["__schema"]["types"]}
    assert {"Buildset", "BuildRequest", "SourceStamp", "Builder", "Node"} <= names
    q = "bsid"
    for _ in range(16):
        q = f"buildrequests {{ buildset {{ {q} }} }}"
    # Nested lists multiply their weights: with the default complexity bound this
    # one would meet that bound too; the depth bound is what is looked at here.
    deep = start("sqlite", "--max-complexity", "100000000")
    code, _, e = deep.err(f"{{ buildset(bsid: 1) {{ {q} }} }}")
    assert code == "QUERY_TOO_COMPLEX"
    assert e["extensions"]["limit"] == 16 and e["extensions"]["found"] > 30
    assert "16" in e["message"] and "--max-depth" in e["message"]
    page = "buildsets(first: 1000) { nodes { bsid reason complete results submittedAt completeAt externalIdstring parentBuildid rebuiltBuildid sourcestampIds } }"
    code, _, e = srv.err(f"{{ a: {page} b: {page} }}")
    assert code == "QUERY_TOO_COMPLEX"
    assert e["extensions"]["limit"] == 20000 and e["extensions"]["found"] > 20000
    assert "--max-complexity" in e["message"]


@pytest.mark.parametrize("content_type, body", [
    ("text/plain", '{"query": "mutation { ensureBuilder(name: \\"csrf\\") { builderid } }"}'),
    ("application/x-www-form-urlencoded", "query=mutation%20%7B%20ensureBuilder(name%3A%20%22csrf%22)%20%7B%20builderid%20%7D%20%7D"),
    ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{"query": "mutation { ensureBuilder(name: \\"csrf\\") { builderid } }"}\r\n--x--\r\n'),
    (None, '{"query": "mutation { ensureBuilder(name: \\"csrf\\") { builderid } }"}'),
])
def test_only_json_bodies_run(start, content_type, body):
    srv = start("sqlite")
    headers = {"content-type": content_type} if content_type else {}
    resp = srv.http.post("/graphql", content=body, headers=headers)
    assert resp.status_code == 415
    assert json.loads(resp.text)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert srv.ok("{ builders { name } }")["builders"] == []


def error_of(resp):
    body = json.loads(resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    e = body["errors"][0]
    assert all(loc["line"] >= 1 for loc in e.get("locations", []))
    return e


def test_every_error_is_graphql_json(start):
    srv = start("sqlite", "--max-body-bytes", "2000")
    h = {"content-type": "application/json"}
    cases = [
        (srv.http.post("/graphql", content='{"query": ', headers=h), 400, "BAD_REQUEST"),
        (srv.http.post("/graphql", content='[{"query": "{ builders { name } }"}]', headers=h), 400, "BAD_REQUEST"),
        (srv.http.post("/graphql", content='{"query": "' + "x" * 3000 + '"}', headers=h), 413, "BAD_REQUEST"),
        (srv.http.get("/graphql/nothing"), 404, "NOT_FOUND"),
        (srv.http.get("/nothing"), 404, "NOT_FOUND"),
        (srv.http.put("/graphql", content="{}", headers=h), 405, "BAD_REQUEST"),
        (srv.http.get("/graphql", params={"query": 'mutation { ensureBuilder(name: "g") { builderid } }'}), 405, "BAD_REQUEST"),
        (srv.http.post("/graphql", content='{"query": 1}', headers=h), 400, "BAD_REQUEST"),
        (srv.http.post("/graphql", content='{}', headers=h), 400, "BAD_REQUEST"),
        (srv.http.post("/graphql/ws", content='{}', headers=h), 405, "BAD_REQUEST"),
        (srv.http.get("/graphql/ws"), 400, "BAD_REQUEST"),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, (resp.request.url, resp.text)
        e = error_of(resp)
        assert e["extensions"]["code"] == code, e
    e = error_of(srv.http.post("/graphql", content='{"query": "' + "x" * 3000 + '"}', headers=h))
    assert "2000" in e["message"]
    assert srv.ok("{ builders { name } }")["builders"] == []
    # Undefined, missing and mistyped variables are the client's mistakes.
    code, field, _ = srv.err("query($n: Int!) { buildset(bsid: $n) { bsid } }")
    assert (code, field) == ("BAD_USER_INPUT", "n")
    code, field, _ = srv.err("{ buildset(bsid: $n) { bsid } }")
    assert (code, field) == ("GRAPHQL_VALIDATION_FAILED", "n")
    code, field, _ = srv.err("query($n: Int!) { buildset(bsid: $n) { bsid } }", {"n": "x"})
    assert (code, field) == ("BAD_USER_INPUT", "bsid")
    code, _, e = srv.err("{ nope }")
    assert code == "GRAPHQL_VALIDATION_FAILED" and e["locations"][0]["line"] == 1


def test_get_names_the_operation_as_graphql_over_http_does(start):
    srv = start("sqlite")
    two = "query A { a: __typename } query B { b: __typename } mutation C { ensureBuilder(name: \"g\") { name } }"
    r = srv.http.get("/graphql", params={"query": two, "operationName": "B"})
    assert json.loads(r.text) == {"data": {"b": "Query"}}
    r = srv.http.get("/graphql", params={"query": two, "operationName": "C"})
    assert r.status_code == 405
    assert srv.ok("{ builders { name } }")["builders"] == []


def test_cors_origins_are_checked_at_start(start):
    import subprocess
    from conftest import BIN
    for bad in ["https://ui.example.org/", "ui.example.org", "https://x/path", "http://x.example:80", "http://\u00fc.example"]:
        r = subprocess.run([BIN, "--database-url", "sqlite::memory:", "--listen", "127.0.0.1:0",
                            "--cors-origin", bad], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "--cors-origin" in r.stderr and "panicked" not in r.stderr, r.stderr
    srv = start("sqlite", "--cors-origin", "*")
    resp = srv.http.post("/graphql", content='{"query": "{ builders { name } }"}',
                         headers={"content-type": "application/json", "origin": "https://any.example"})
    assert resp.headers.get("access-control-allow-origin") == "*"
    assert json.loads(resp.text)["data"] == {"builders": []}
    pre = srv.http.options("/graphql", headers={"origin": "https://any.example",
                                                "access-control-request-method": "POST",
                                                "access-control-request-headers": "content-type"})
    assert pre.headers.get("access-control-allow-origin") == "*"
    assert "panicked" not in srv.output()


def test_a_corrupt_patch_body_is_an_error_not_an_empty_text(start):
    srv = start("sqlite")
    inp = {"sourcestamps": [{"stamp": {"branch": "p", "patch": {"body": "--- a\n"}}}]}
    bsid = add_buildset(srv, **inp)["bsid"]
    db = sqlite3.connect(srv.db_path)
    db.execute("UPDATE patches SET patch_base64 = 'not base64!'")
    db.commit()
    db.close()
    q = "query($b: Int!) { buildset(bsid: $b) { sourcestamps { branch patch { level body } } } }"
    body = srv.post(q, {"b": bsid})
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR", body
    assert body["errors"][0]["path"][-1] == "body"
    request_id = body["errors"][0]["extensions"]["requestId"]
    assert request_id in srv.output() and "not base64" in srv.output()
    # The rest of the stamp still reads.
    q = "query($b: Int!) { buildset(bsid: $b) { sourcestamps { branch patch { level } } } }"
    assert srv.ok(q, {"b": bsid})["buildset"]["sourcestamps"][0]["patch"]["level"] == 1


def test_builds_are_null_on_a_standalone_database_and_scheduler_is_stored_as_buildbot_does(start):
    srv = start("sqlite")
    b = srv.ok('mutation { ensureBuilder(name: "s") { builderid } }')["ensureBuilder"]["builderid"]
    added = add_buildset(srv, builderids=[b], scheduler="nightly")
    body = srv.post_raw("query($b: Int!) { buildset(bsid: $b) { buildrequests { builds { number } } "
                        "properties { name value source } } }", {"b": added["bsid"]}).text
    data = json.loads(body)["data"]["buildset"]
    assert data["buildrequests"] == [{"builds": None}]
    assert data["properties"] == [{"name": "scheduler", "value": "nightly", "source": "Scheduler"}]
    # Given twice is the client's mistake, named.
    code, field, _ = srv.err("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }", {"in": {
        "reason": "r", "sourcestamps": [{"stamp": {"branch": "m"}}], "builderids": [],
        "scheduler": "a", "properties": [{"name": "scheduler", "value": "b", "source": "x"}]}})
    assert (code, field) == ("BAD_USER_INPUT", "scheduler")
