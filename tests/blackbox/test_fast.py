"""Objects whose selection is plain fields are answered without async-graphql's
per-field futures (src/graphql/fast.rs); a selection with a fragment takes
async-graphql's own path. Both must answer every field of every type alike, byte
for byte, nulls and errors included."""

import json

import pytest

BUILDSET = ("id bsid externalIdstring reason submittedAt complete completeAt results "
            "parentBuildid parentRelationship rebuiltBuildid sourcestampIds")
STAMP = "id ssid branch revision repository codebase project createdAt"
PATCH = "id patchid level body author comment subdir"
PROPERTY = "name value source"
REQUEST = "id buildrequestid bsid builderid priority complete results submittedAt completeAt waitedFor builds { buildid }"
BUILDER = "id builderid name description"


def scalars(srv, type_name):
    """Every field of `type_name` without arguments whose type is a scalar, read
    from introspection: a field added to the schema is compared here without
    anyone listing it."""
    q = """query($t: String!) { __type(name: $t) { fields { name args { name }
      type { kind ofType { kind ofType { kind ofType { kind } } } } } } }"""
    fields = srv.ok(q, {"t": type_name})["__type"]["fields"]

    def base(t):
        while t.get("ofType"):
            t = t["ofType"]
        return t["kind"]
    return [f["name"] for f in fields if not f["args"] and base(f["type"]) == "SCALAR"]


EXPECTED = {"Buildset": BUILDSET, "SourceStamp": STAMP, "Patch": PATCH, "Property": PROPERTY,
            "Builder": BUILDER}


def test_every_scalar_field_is_in_the_comparison(start):
    # The lists the comparison below selects hold every scalar field the schema
    # has: a new field fails here until it is compared too.
    srv = start("sqlite")
    for t, listed in EXPECTED.items():
        assert sorted(scalars(srv, t)) == sorted(listed.split()), t
    request = [f for f in REQUEST.split() if f.isidentifier() and f not in ("builds", "buildid")]
    assert sorted(scalars(srv, "BuildRequest")) == sorted(request)
    build = "id buildid number builderid buildrequestid stateString results startedAt completeAt"
    assert sorted(scalars(srv, "Build")) == sorted(build.split())


def tree(frag):
    """The whole nested selection; `frag` wraps each object's fields in an inline
    fragment on its own type, which sends it down async-graphql's path."""
    def on(t, fields):
        return f"... on {t} {{ {fields} }}" if frag else fields
    builder = on("Builder", BUILDER)
    owner = on("Buildset", "bsid reason __typename")
    request = on("BuildRequest", f"{REQUEST} builder {{ {builder} }} buildset {{ {owner} }}")
    patch = on("Patch", PATCH)
    stamp = on("SourceStamp", f"{STAMP} __typename patch {{ {patch} }}")
    prop = on("Property", PROPERTY)
    return on("Buildset", f"__typename {BUILDSET} sourcestamps {{ {stamp} }} properties {{ {prop} }} "
                          f'p: property(name: "n") {{ {prop} }} buildrequests {{ {request} }}')


def raw(srv, query, variables=None):
    r = srv.http.post("/graphql", json={"query": query, "variables": variables or {}})
    assert r.status_code == 200
    return r.text


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_both_paths_answer_every_field_alike(start, backend):
    srv = start(backend)
    ids = [srv.ok('mutation($n: String!, $d: String) { ensureBuilder(name: $n, description: $d) { builderid } }',
                  {"n": n, "d": d})["ensureBuilder"]["builderid"] for n, d in [("b1", "first"), ("b2", None)]]
    add = "mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }"
    patch = {"body": "diff \u00e9\n", "level": 2,
             "author": "a\u00fcthor", "comment": "c \"q\"", "subdir": "sub"}
    values = [None, 0, -1.5, 1e300, "s\n\u2028", [1, [2]], {"k": {"x": None}}, True, 9007199254740993]
    bsids = []
    for i, v in enumerate(values):
        stamps = [{"stamp": {"branch": f"br{i}", "repository": "r", "revision": None if i % 2 else "abc",
                             "codebase": "cb", "project": "p\u00e9",
                             **({"patch": patch} if i % 3 == 0 else {})}},
                  {"stamp": {"repository": f"r{i}"}}]
        inp = {"reason": f"why {i}" if i % 2 else "", "sourcestamps": stamps, "builderids": ids[: 1 + i % 2],
               "properties": [{"name": "n", "value": v, "source": "src"}, {"name": "m", "value": i, "source": ""}],
               **({"externalIdstring": f"ext-{i}", "parentBuildid": 7, "parentRelationship": "child",
                   "rebuiltBuildid": 3} if i % 2 else {})}
        bsids.append(srv.ok(add, {"in": inp})["addBuildset"]["bsid"])
    srv.ok(f"mutation {{ completeBuildset(bsid: {bsids[1]}, results: 2) {{ bsid }} }}")

    plain, frag = tree(False), tree(True)
    pages = [
        "query($b: Int!) {{ buildset(bsid: $b) {{ {} }} }}",
        "query {{ buildsets(first: 50) {{ nodes {{ {} }} edges {{ node {{ {} }} }} }} }}",
        "query {{ recentBuildsets(count: 5) {{ {} }} }}",
    ]
    for page in pages:
        for b in bsids[:3]:
            fast = raw(srv, page.format(plain, plain), {"b": b})
            slow = raw(srv, page.format(frag, frag), {"b": b})
            assert fast == slow
            body = json.loads(fast)
            assert "errors" not in body, body
    # The plain path was taken and saw the data: values, nulls, patches and builders.
    text = raw(srv, pages[1].format(plain, plain))
    assert '"value":9007199254740993' in text and '"value":{"k":{"x":null}}' in text
    assert '"body":"diff \u00e9\\n"' in text and '"subdir":"sub"' in text
    assert '"description":"first"' in text and '"description":null' in text
    assert '"__typename":"SourceStamp"' in text


def test_fragments_aliases_and_repeats_still_merge(start):
    srv = start("sqlite")
    b = srv.ok('mutation { ensureBuilder(name: "m") { builderid } }')["ensureBuilder"]["builderid"]
    srv.ok("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }",
           {"in": {"reason": "r", "sourcestamps": [{"stamp": {"branch": "x"}}], "builderids": [b]}})
    q = ("{ buildsets { nodes { bsid sourcestamps { branch } x: bsid "
         "sourcestamps { ssid } ... on Buildset { reason } } } }")
    body = json.loads(raw(srv, q))
    node = body["data"]["buildsets"]["nodes"][0]
    assert list(node) == ["bsid", "sourcestamps", "x", "reason"]
    assert list(node["sourcestamps"][0]) == ["branch", "ssid"]
    q = "{ buildsets { nodes { bsid @skip(if: true) reason @include(if: true) } } }"
    assert json.loads(raw(srv, q))["data"]["buildsets"]["nodes"] == [{"reason": "r"}]
