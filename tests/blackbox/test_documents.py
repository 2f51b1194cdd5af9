"""A query text is checked and parsed once, then kept: the same text sent again runs
without being parsed again. What depends on more than the text (the operation name,
the variables, the transport, the token) is still decided per request."""

import json

from conftest import add_buildset

TWO_OPS = ("query Ids($b: Int!) { buildset(bsid: $b) { bsid } } "
           "query Reasons($b: Int!) { buildset(bsid: $b) { reason } }")


def run(srv, query, operation=None, variables=None):
    body = {"query": query}
    if operation:
        body["operationName"] = operation
    if variables is not None:
        body["variables"] = variables
    r = srv.http.post("/graphql", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def test_one_text_answers_each_operation_and_each_variable(start):
    srv = start("sqlite")
    x = add_buildset(srv, reason="first")["bsid"]
    y = add_buildset(srv, reason="second")["bsid"]
    assert run(srv, TWO_OPS, "Ids", {"b": x}) == {"data": {"buildset": {"bsid": x}}}
    assert run(srv, TWO_OPS, "Reasons", {"b": x}) == {"data": {"buildset": {"reason": "first"}}}
    assert run(srv, TWO_OPS, "Reasons", {"b": y}) == {"data": {"buildset": {"reason": "second"}}}
    assert run(srv, TWO_OPS, "Ids", {"b": y}) == {"data": {"buildset": {"bsid": y}}}
    # No operation named, or one the text does not hold: refused every time.
    for _ in range(2):
        body = run(srv, TWO_OPS, None, {"b": x})
        assert body.get("errors") and body.get("data") is None, body
        body = run(srv, TWO_OPS, "Nope", {"b": x})
        assert "Nope" in body["errors"][0]["message"], body


def test_a_refused_text_is_refused_again(start):
    srv = start("sqlite")
    for _ in range(3):
        body = run(srv, "query { buildset(bsid: 1) { bsid ")
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED", body
        body = run(srv, "query { buildset(bsid: 1) { nosuchfield } }")
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", body
    # The same text refused for its operation name only is run once that is right.
    assert "errors" in run(srv, TWO_OPS, "Nope", {"b": 1})
    assert run(srv, TWO_OPS, "Ids", {"b": 1}) == {"data": {"buildset": None}}


def test_bounds_on_variables_hold_for_a_text_already_seen(start):
    srv = start("sqlite", "--max-input-list", "3", "--max-where-values", "3")
    q = "query($ids: [Int!]!) { buildsets(where: {bsid: {in: $ids}}) { totalCount } }"
    assert run(srv, q, None, {"ids": [1, 2]}) == {"data": {"buildsets": {"totalCount": 0}}}
    body = run(srv, q, None, {"ids": list(range(10))})
    e = body["errors"][0]["extensions"]
    assert (e["code"], e["limit"], e["found"]) == ("BAD_USER_INPUT", 3, 10), body
    deep = {"bsid": {"in": [1]}}
    for _ in range(40):
        deep = {"and": [deep]}
    w = "query($w: BuildsetFilter) { buildsets(where: $w) { totalCount } }"
    assert run(srv, w, None, {"w": {"bsid": {"in": [1]}}}) == {"data": {"buildsets": {"totalCount": 0}}}
    body = run(srv, w, None, {"w": deep})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


def test_a_mutation_text_seen_over_post_is_still_refused_over_get(start):
    srv = start("sqlite")
    m = 'mutation { ensureBuilder(name: "g") { builderid } }'
    assert "errors" not in run(srv, m)
    r = srv.http.get("/graphql", params={"query": m})
    assert r.status_code == 405, r.text
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
