"""A NUL character: PostgreSQL cannot store one in text, so every backend refuses it
alike (BAD_USER_INPUT naming the field, nothing written), except inside a property
value, which is stored as JSON text and keeps it."""

import base64
import json

import pytest

from conftest import ADD


def base_input(builder):
    return {"reason": "r", "sourcestamps": [{"stamp": {"branch": "b"}}], "builderids": [builder]}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_nul_is_refused_alike(start, backend):
    srv = start(backend)
    b = srv.ok('mutation { ensureBuilder(name: "b") { builderid } }')["ensureBuilder"]["builderid"]
    cases = {
        "reason": lambda i: i.update(reason="a\u0000b"),
        "branch": lambda i: i["sourcestamps"][0]["stamp"].update(branch="x\u0000"),
        "properties.name": lambda i: i.update(properties=[{"name": "n\u0000", "value": 1, "source": "s"}]),
        "properties.source": lambda i: i.update(properties=[{"name": "n", "value": 1, "source": "\u0000"}]),
        "externalIdstring": lambda i: i.update(externalIdstring="\u0000"),
    }
    for field, change in cases.items():
        inp = base_input(b)
        change(inp)
        code, got, e = srv.err(ADD, {"in": inp})
        assert (code, got) == ("BAD_USER_INPUT", field), e
    code, got, _ = srv.err('mutation($n: String!) { ensureBuilder(name: $n) { name } }', {"n": "x\u0000y"})
    assert (code, got) == ("BAD_USER_INPUT", "name")
    assert srv.ok("{ buildsets { totalCount } }")["buildsets"]["totalCount"] == 0
    q = "query($w: BuildsetFilter) { buildsets(where: $w) { totalCount } }"
    for w in [{"reason": {"eq": "\u0000"}}, {"branch": {"contains": "a\u0000"}}, {"reason": {"in": ["a", "\u0000"]}}]:
        code, got, _ = srv.err(q, {"w": w})
        assert (code, got) == ("BAD_USER_INPUT", "where"), w
    def cursor(reason):
        data = json.dumps({"o": "REASON:A,BSID:A", "k": [reason, 1]}).encode()
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    page = 'query($c: String) { buildsets(orderBy: [{field: REASON}], after: $c) { totalCount } }'
    assert srv.ok(page, {"c": cursor("a")})["buildsets"]["totalCount"] == 0, "a well-formed cursor"
    code, got, _ = srv.err(page, {"c": cursor("a\u0000")})
    assert (code, got) == ("BAD_USER_INPUT", "after")
    # Inside a property value, a NUL is JSON text (\u0000) and comes back as given.
    inp = base_input(b)
    inp["properties"] = [{"name": "v", "value": "a\u0000b", "source": "s"}]
    added = srv.ok(ADD, {"in": inp})["addBuildset"]
    assert added["buildset"]["properties"][0]["value"] == "a\u0000b"
