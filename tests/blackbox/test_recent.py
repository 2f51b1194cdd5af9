"""recentBuildsets as Buildbot's getRecentBuildsets answers it: the `count` most
recently submitted buildsets with a sourcestamp on the branch / repository (ties by
id), oldest first. SQLite finds them with EXISTS, the others with IN."""

import pytest

ADD = "mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }"


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_recent_by_branch_and_repository(start, backend):
    srv = start(backend)
    b = srv.ok('mutation { ensureBuilder(name: "r") { builderid } }')["ensureBuilder"]["builderid"]
    made = []
    # (seconds, [(branch, repository)]): equal times, two stamps, stamps shared.
    plan = [(10, [("a", "x")]), (30, [("b", "x"), ("a", "y")]), (20, [("a", "x")]), (30, [("a", "x")]),
            (40, [("b", "y")]), (30, [("c", "x")]), (50, [("a", "y")]), (5, [("a", "x")])]
    for t, stamps in plan:
        inp = {"reason": "r", "builderids": [b], "submittedAt": f"2026-01-01T00:00:{t:02d}Z",
               "sourcestamps": [{"stamp": {"branch": br, "repository": repo}} for br, repo in stamps]}
        made.append((t, srv.ok(ADD, {"in": inp})["addBuildset"]["bsid"], stamps))

    def expect(count, branch=None, repo=None):
        hits = [(t, bsid) for t, bsid, stamps in made
                if any((branch is None or br == branch) and (repo is None or r == repo) for br, r in stamps)]
        newest = sorted(hits, reverse=True)[:count]
        return [bsid for _, bsid in reversed(newest)]

    q = "query($n: Int!, $b: String, $r: String) { recentBuildsets(count: $n, branch: $b, repository: $r) { bsid } }"
    for count in [1, 3, 10]:
        for branch, repo in [("a", None), (None, "x"), ("a", "y"), ("b", None), ("zz", None), (None, None)]:
            got = srv.ok(q, {"n": count, "b": branch, "r": repo})["recentBuildsets"]
            assert [g["bsid"] for g in got] == expect(count, branch, repo), (count, branch, repo)
