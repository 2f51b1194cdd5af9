"""Safe retries: a scheduler that lost an answer can send the same call again."""

import threading

import pytest

ADD = """mutation($in: AddBuildsetInput!) {
  addBuildset(input: $in) { bsid created brids { builderid buildrequestid } buildset { externalIdstring } }
}"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_an_idempotency_key_returns_the_buildset_it_first_wrote(start, backend):
    srv = start(backend)
    b = srv.ok('mutation { ensureBuilder(name: "r") { builderid } }')["ensureBuilder"]["builderid"]

    def inp(key, **extra):
        return {"in": {"reason": "retry", "sourcestamps": [{"stamp": {"branch": "m"}}],
                       "builderids": [b], "idempotencyKey": key, **extra}}

    first = srv.ok(ADD, inp("sched-42"))["addBuildset"]
    assert first["created"] is True and first["buildset"]["externalIdstring"] == "sched-42"
    again = srv.ok(ADD, inp("sched-42"))["addBuildset"]
    assert again == {**first, "created": False}

    # Retries that race each other still write one buildset.
    answers, lock = [], threading.Lock()

    def one():
        data = srv.ok(ADD, inp("race"))["addBuildset"]
        with lock:
            answers.append(data)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a["bsid"] for a in answers}) == 1, answers
    assert sum(a["created"] for a in answers) == 1, answers
    count = srv.ok('{ buildsets(where: {externalIdstring: {eq: "race"}}) { totalCount } }')
    assert count["buildsets"]["totalCount"] == 1

    code, field, _ = srv.err(ADD, inp("k", externalIdstring="x"))
    assert (code, field) == ("BAD_USER_INPUT", "idempotencyKey")
    code, field, _ = srv.err(ADD, inp("k" * 257))
    assert (code, field) == ("BAD_USER_INPUT", "idempotencyKey")


def test_completing_twice_answers_with_the_stored_result(start):
    srv = start("sqlite")
    b = srv.ok('mutation { ensureBuilder(name: "r") { builderid } }')["ensureBuilder"]["builderid"]
    bsid = srv.ok(ADD, {"in": {"reason": "r", "sourcestamps": [{"stamp": {"branch": "m"}}],
                               "builderids": [b]}})["addBuildset"]["bsid"]
    done = srv.ok(f'mutation {{ completeBuildset(bsid: {bsid}, results: 2, '
                  f'completeAt: "2026-01-02T03:04:05Z") {{ results completeAt }} }}')
    assert done["completeBuildset"] == {"results": 2, "completeAt": "2026-01-02T03:04:05+00:00"}
    body = srv.post(f"mutation {{ completeBuildset(bsid: {bsid}, results: 0) {{ bsid }} }}")
    ext = body["errors"][0]["extensions"]
    assert ext == {"code": "ALREADY_COMPLETE", "results": 2, "completeAt": "2026-01-02T03:04:05+00:00"}, body


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_idempotency_keys_are_exact_strings(start, backend):
    """MariaDB compares text by collation: `ikA` found `ika`, `ike` found `iké`."""
    srv = start(backend)
    b = srv.ok('mutation { ensureBuilder(name: "k") { builderid } }')["ensureBuilder"]["builderid"]
    q = "mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid created } }"
    seen = set()
    for key in ["ika", "ikA", "ike", "ik\u00e9", "ika "]:
        got = srv.ok(q, {"in": {"reason": "r", "sourcestamps": [{"stamp": {"branch": "k"}}],
                                "builderids": [b], "idempotencyKey": key}})["addBuildset"]
        assert got["created"] is True, (key, got)
        seen.add(got["bsid"])
    assert len(seen) == 5
