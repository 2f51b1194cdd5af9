"""A buildset's sourcestamps and their patches read the same whichever way they are
loaded: up to 100 buildsets in one join (links, stamps, patches), a larger set by the
separate indexed lookups. Each answer is checked against what was added, in the
order given, with stamps shared between buildsets and patches on some of them."""

import pytest

from test_metrics import scrape, value

ADD = "mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }"
STAMPS = "sourcestamps { branch revision repository patch { level subdir author comment body } }"


def expected_stamp(spec):
    patch = spec.get("patch")
    return {
        "branch": spec["branch"],
        "revision": spec["revision"],
        "repository": spec["repository"],
        "patch": None if patch is None else {
            "level": patch["level"], "subdir": patch.get("subdir"), "author": patch["author"],
            "comment": patch["comment"], "body": patch["body"],
        },
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_stamps_and_patches_read_alike_for_few_and_many_buildsets(start, backend):
    srv = start(backend)
    b = srv.ok('mutation { ensureBuilder(name: "s") { builderid } }')["ensureBuilder"]["builderid"]
    shared = {"branch": "main", "revision": "a" * 40, "repository": "https://x/shared.git", "codebase": "shared"}
    made = {}
    for i in range(14):
        stamps = []
        for k in range(1 + i % 3):  # 1 to 3 stamps, 4 with the shared one
            spec = {"branch": f"br-{i}-{k}", "revision": f"{i:02d}{k}".ljust(40, "f"),
                    "repository": f"https://x/r{k}.git", "codebase": f"cb{k}"}
            if (i + k) % 3 == 0:
                spec["patch"] = {"body": f"--- a\n+++ b\n@@ {i} {k} @@\n", "level": 1 + k,
                                 "author": f"au{i}", "comment": f"fix {i}.{k}",
                                 **({"subdir": "sub"} if k else {})}
            stamps.append(spec)
        if i % 5 == 1:
            stamps.insert(0, shared)
        inp = {"reason": f"r{i}", "builderids": [b], "sourcestamps": [{"stamp": s} for s in stamps]}
        bsid = srv.ok(ADD, {"in": inp})["addBuildset"]["bsid"]
        made[bsid] = [expected_stamp(s) for s in stamps]
    # Enough plain ones to page past the join's bound of 100.
    for i in range(14, 102):
        spec = {"branch": f"plain-{i}", "revision": f"{i:03d}".ljust(40, "e"),
                "repository": "https://x/plain.git"}
        if i % 7 == 0:
            spec["patch"] = {"body": f"plain {i}\n", "level": 1, "author": "p", "comment": f"c{i}"}
        bsid = srv.ok(ADD, {"in": {"reason": f"p{i}", "builderids": [b],
                                  "sourcestamps": [{"stamp": spec}]}})["addBuildset"]["bsid"]
        made[bsid] = [expected_stamp(spec)]

    def check(nodes):
        assert nodes, "no buildsets"
        for n in nodes:
            assert n["sourcestamps"] == made[n["bsid"]], n["bsid"]

    # One buildset at a time: the joined read.
    for bsid in made:
        one = srv.ok(f"query($b: Int!) {{ buildset(bsid: $b) {{ bsid {STAMPS} }} }}", {"b": bsid})
        check([one["buildset"]])
    # Pages of 1, 14 and 100 (joined) and of 101 and 102 (separate lookups), and a
    # page whose stamps are asked without patches.
    page = "query($n: Int!) { buildsets(first: $n, orderBy: [{field: BSID, direction: ASC}]) { nodes { bsid %s } } }"
    for n in [1, 14, 100, 101, 102]:
        nodes = srv.ok(page % STAMPS, {"n": n})["buildsets"]["nodes"]
        assert len(nodes) == n
        check(nodes)
        bare = srv.ok(page % "sourcestamps { branch revision }", {"n": n})["buildsets"]["nodes"]
        for node in bare:
            assert node["sourcestamps"] == [{"branch": s["branch"], "revision": s["revision"]}
                                            for s in made[node["bsid"]]]
    # Reached from build requests: each request's buildset, its stamps loaded for all.
    reqs = srv.ok("{ buildsets(first: 14) { nodes { buildrequests { buildset { bsid %s } } } } }" % STAMPS)
    check([r["buildset"] for n in reqs["buildsets"]["nodes"] for r in n["buildrequests"]])

    # One buildset with its stamps and everything else reads as it does in a page.
    full = ("bsid reason %s properties { name value source } "
            "buildrequests { buildrequestid builderid buildset { bsid sourcestamps { branch } } }") % STAMPS
    pages = {n["bsid"]: n for n in srv.ok(page % full, {"n": 102})["buildsets"]["nodes"]}
    for bsid in list(made)[:16]:
        one = srv.ok("query($b: Int!) { buildset(bsid: $b) { %s } }" % full, {"b": bsid})["buildset"]
        assert one == pages[bsid], bsid
    assert srv.ok("{ buildset(bsid: 987654) { bsid %s } }" % STAMPS) == {"buildset": None}
    assert srv.ok("{ buildset(bsid: 987654) { bsid sourcestamps { ssid } } }") == {"buildset": None}

    # What the join saves: one buildset with its stamps and patches is one statement,
    # a page of 100 two; a page of 101 is four (links, stamps, patches apart).
    for _ in range(3):
        srv.http.post("/graphql", json={
            "query": f"query One($b: Int!) {{ buildset(bsid: $b) {{ bsid {STAMPS} }} }}",
            "operationName": "One", "variables": {"b": max(made)}})
    samples, _ = scrape(srv)
    assert value(samples, "bsgql_statements_per_request_count", operation="One") == 3
    assert value(samples, "bsgql_statements_per_request_sum", operation="One") == 3
    for name, n in [("Hundred", 100), ("HundredOne", 101)]:
        r = srv.http.post("/graphql", json={"query": ("query %s($n: Int!) " % name) + page[len("query($n: Int!) "):] % STAMPS,
                                            "operationName": name, "variables": {"n": n}})
        assert len(r.json()["data"]["buildsets"]["nodes"]) == n
    samples, _ = scrape(srv)
    assert value(samples, "bsgql_statements_per_request_sum", operation="Hundred") == 2
    assert value(samples, "bsgql_statements_per_request_sum", operation="HundredOne") == 4
