"""The cost model and the bounds, as a client meets them: a full page of 100
buildsets with every relation fits the default complexity, lists weigh by their
items, a `where` adds its conditions and values, every bound is a flag whose error
names the limit and the size found, and an out-of-range Int names its argument."""

import asyncio
import json

import pytest

from conftest import ADD, add_buildset
from test_subscriptions import connect, first_error, init, subscribe

FULL_PAGE = """query Full($n: Int) { buildsets(first: $n) { pageInfo { hasNextPage endCursor }
  edges { cursor node {
    id bsid externalIdstring reason submittedAt complete completeAt results parentBuildid
    parentRelationship rebuiltBuildid sourcestampIds
    sourcestamps { id ssid branch revision repository codebase project createdAt
      patch { patchid level subdir author comment body } }
    properties { name value source }
    buildrequests { id buildrequestid bsid builderid priority complete results submittedAt
      completeAt waitedFor builder { id builderid name description }
      builds { buildid number builderid buildrequestid stateString results startedAt completeAt } }
  } } } }"""


def complexity_of(srv, query, variables=None):
    """The complexity the server found, read off its refusal at a limit of 1."""
    code, _, e = srv.err(query, variables)
    assert code == "QUERY_TOO_COMPLEX", e
    return e["extensions"]["found"]


def test_a_full_page_of_100_fits_the_default_complexity(start):
    srv = start("sqlite")
    for _ in range(3):
        add_buildset(srv, [{"name": "p", "value": 1, "source": "s"}])
    page = srv.ok(FULL_PAGE, {"n": 100})["buildsets"]["edges"]
    assert len(page) == 3 and page[0]["node"]["buildrequests"][0]["builder"]["name"] == "bb"
    code, _, e = srv.err(FULL_PAGE, {"n": 200})
    assert code == "QUERY_TOO_COMPLEX", e
    assert e["extensions"]["limit"] == 20000 and e["extensions"]["found"] > 20000, e


def test_lists_weigh_by_their_items_and_where_by_its_terms(start):
    srv = start("sqlite", "--max-complexity", "1")
    one = complexity_of(srv, "{ buildset(bsid: 1) { bsid } }")
    stamps = complexity_of(srv, "{ buildset(bsid: 1) { bsid sourcestamps { ssid } } }")
    props = complexity_of(srv, "{ buildset(bsid: 1) { bsid properties { name } } }")
    # A list counts more than a plain field: each of its items' selections counts.
    assert stamps - one > 1 and props - one > 1, (one, stamps, props)
    builders = complexity_of(srv, "{ builders { name } }")
    assert builders >= 100, builders
    page = complexity_of(srv, "{ buildsets(first: 10) { nodes { bsid } } }")
    with_where = complexity_of(srv, "{ buildsets(first: 10, where: {bsid: {in: [1, 2, 3]}, reason: {eq: \"x\"}}) { nodes { bsid } } }")
    # Two conditions and four values compared.
    assert with_where - page == 2 * 10 + 4, (page, with_where)
    sub_plain = asyncio.run(ws_complexity(srv, "subscription { buildsetAdded { bsid } }"))
    sub_where = asyncio.run(ws_complexity(srv, "subscription { buildsetAdded(where: {bsid: {gt: 1}}) { bsid } }"))
    assert sub_where - sub_plain == 11, (sub_plain, sub_where)


async def ws_complexity(srv, query):
    """The same, for a subscription, which only the WebSocket takes."""
    ws = await init(await connect(srv))
    try:
        await subscribe(ws, "1", query)
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        e = first_error(msg)
        assert e["extensions"]["code"] == "QUERY_TOO_COMPLEX", e
        return e["extensions"]["found"]
    finally:
        await ws.close()


def test_aliased_lists_are_refused_by_their_weight(start):
    srv = start("sqlite")
    # 50 root fields pass the root-field bound; each weighs 100 builders of 4 fields.
    query = "{ %s }" % " ".join(f"a{i}: builders {{ id builderid name description }}" for i in range(50))
    code, _, e = srv.err(query)
    assert code == "QUERY_TOO_COMPLEX" and e["extensions"]["limit"] == 20000, e


@pytest.mark.parametrize("flags, query, variables, field, limit, found", [
    (("--max-where-conditions", "3"),
     "{ buildsets(where: {or: [{bsid: {eq: 1}}, {bsid: {eq: 2}}, {bsid: {eq: 3}}, {bsid: {eq: 4}}]}) { totalCount } }",
     None, "where", 3, 4),
    (("--max-where-values", "5"),
     "{ buildsets(where: {bsid: {in: [1, 2, 3, 4, 5, 6]}}) { totalCount } }", None, "where", 5, 6),
    (("--max-input-list", "2"), ADD,
     {"in": {"reason": "r", "sourcestamps": [{"ssid": 1}], "builderids": [1, 2, 3]}}, "builderids", 2, 3),
    (("--max-root-fields", "2"), "{ a: __typename b: __typename c: __typename }", None, None, 2, 3),
    (("--max-selections", "5"), "{ buildsets { nodes { bsid reason results complete } } }", None, None, 5, 6),
])
def test_each_bound_is_a_flag_and_its_error_names_it(start, flags, query, variables, field, limit, found):
    srv = start("sqlite", *flags)
    code, got_field, e = srv.err(query, variables)
    assert code in ("BAD_USER_INPUT", "QUERY_TOO_COMPLEX"), e
    assert e["extensions"]["limit"] == limit and e["extensions"]["found"] == found, e
    if field:
        assert got_field == field, e
    if flags[0] != "--max-selections" and flags[0] != "--max-root-fields":
        assert flags[0] in e["message"], e
    # The same request passes with the default bound.
    srv2 = start("sqlite")
    body = srv2.post(query, variables)
    assert not any(x["extensions"].get("limit") for x in body.get("errors", [])), body


@pytest.mark.parametrize("flag, value", [("--max-nesting", "3"), ("--max-value-nesting", "2")])
def test_nesting_bounds_are_flags(start, flag, value):
    srv = start("sqlite", flag, value)
    code, _, e = srv.err("{ buildsets(where: {not: {not: {bsid: {in: [1]}}}}) { totalCount } }")
    # The text's brackets are bounded before the parser runs; a value's nesting after.
    want = {"--max-nesting": "GRAPHQL_PARSE_FAILED", "--max-value-nesting": "BAD_USER_INPUT"}[flag]
    assert code == want and flag in e["message"], e


@pytest.mark.parametrize("query, variables, field", [
    ("{ buildset(bsid: 99999999999) { bsid } }", None, "bsid"),
    ("query($b: Int!) { buildset(bsid: $b) { bsid } }", {"b": 2**40}, "bsid"),
    ("mutation { completeBuildset(bsid: 1, results: -99999999999) { bsid } }", None, "results"),
    ("{ buildsets(first: 2, where: {bsid: {in: [1, 99999999999]}}) { totalCount } }", None, "where"),
])
def test_an_out_of_range_int_names_its_argument(start, query, variables, field):
    srv = start("sqlite")
    code, got, e = srv.err(query, variables)
    assert (code, got) == ("BAD_USER_INPUT", field), e


def test_an_answer_is_bounded_by_the_text_it_reads(start):
    """Complexity counts fields, not bytes: a page of large property values asked for
    under ten aliases made an 840 MB answer. An operation may read at most
    --max-response-bytes of property values and patches."""
    srv = start("sqlite", "--max-response-bytes", "2000000")
    big = "v" * 60000
    for _ in range(5):
        add_buildset(srv, [{"name": f"p{i}", "value": big, "source": "s"} for i in range(4)])
    one = "buildsets(first: 5) { nodes { properties { value } } }"
    # 5 buildsets x 4 values x 60 kB = 1.2 MB: within the bound.
    assert len(srv.ok("{ %s }" % one)["buildsets"]["nodes"]) == 5
    code, _, e = srv.err("{ a: %s b: %s }" % (one, one))
    assert code == "QUERY_TOO_COMPLEX", e
    assert e["extensions"]["limit"] == 2000000 and "--max-response-bytes" in e["message"], e
    assert srv.ok("{ __typename }") == {"__typename": "Query"}


def ws_first_error(srv, query, variables=None):
    """The error a subscription is refused with; None when it is accepted (a refusal
    comes at once, an accepted subscription is silent until an event)."""
    async def go():
        ws = await init(await connect(srv))
        await subscribe(ws, "s", query, variables)
        try:
            return json.loads(await asyncio.wait_for(ws.recv(), 1.5))
        except asyncio.TimeoutError:
            return None
        finally:
            await ws.close()
    msg = asyncio.run(go())
    return first_error(msg) if msg else None


DEEP = "{ buildsets { nodes { buildrequests { buildset { bsid } } } } }"  # depth 5
TOKENS = "{ " + " ".join(f"a{i}: __typename" for i in range(40)) + " }"  # 162 tokens
SUB3 = "subscription { buildsetAdded { bsid reason complete } }"
SUB_IN = "subscription { buildsetAdded(where: {bsid: {in: [1, 2, 3]}}) { bsid } }"


def test_every_limit_read_from_the_one_struct_is_enforced_as_configured(start):
    """One `Limits` (src/config/limits.rs) is read by the door, the complexity
    rules, the resolvers, the body reader and the socket: each flag changes what is
    enforced, in either direction."""
    default = start("sqlite")
    add_buildset(default)
    tight = start("sqlite", "--max-depth", "4", "--max-tokens", "100", "--max-body-bytes", "2048",
                  "--max-subscription-selections", "2", "--max-subscription-where-values", "2",
                  "--max-root-fields", "100")
    # --max-page-size, raised: a page beyond the default is read, and is costed as
    # the size it loads (it was costed as 1,000 whatever the flag).
    code, field, e = default.err("{ buildsets(first: 3000) { nodes { bsid } } }")
    assert (code, field) == ("BAD_USER_INPUT", "first"), e
    big = start("sqlite", "--max-page-size", "5000", "--max-complexity", "100000")
    add_buildset(big)
    assert len(big.ok("{ buildsets(first: 3000) { nodes { bsid } } }")["buildsets"]["nodes"]) == 1
    assert len(big.ok("{ recentBuildsets(count: 4000) { bsid } }")["recentBuildsets"]) == 1
    costly = start("sqlite", "--max-page-size", "5000", "--max-complexity", "2000")
    code, _, e = costly.err("{ buildsets(first: 3000) { nodes { bsid } } }")
    assert code == "QUERY_TOO_COMPLEX" and e["extensions"]["found"] >= 3000, e
    # --max-depth
    assert default.ok(DEEP)
    code, _, e = tight.err(DEEP)
    assert code == "QUERY_TOO_COMPLEX" and e["extensions"]["limit"] == 4 and "--max-depth" in e["message"], e
    # --max-tokens
    assert default.ok(TOKENS)
    code, _, e = tight.err(TOKENS)
    assert code == "QUERY_TOO_COMPLEX" and e["extensions"]["limit"] == 100, e
    # --max-body-bytes: the POST body, and a socket's message.
    padded = {"query": "{ __typename }" + " " * 3000}
    assert default.http.post("/graphql", json=padded).status_code == 200
    assert tight.http.post("/graphql", json=padded).status_code == 413

    async def big_message(srv):
        ws = await init(await connect(srv))
        await subscribe(ws, "m", "{ __typename }" + " " * 3000)
        try:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return msg["type"]
        except Exception:  # noqa: BLE001 - closed, which is what `close_code` tells
            return ws.close_code
    assert asyncio.run(big_message(default)) == "next"
    assert asyncio.run(big_message(tight)) == 1009
    # --max-subscription-selections and --max-subscription-where-values
    assert ws_first_error(default, SUB3) is None
    e = ws_first_error(tight, SUB3)
    assert e["extensions"]["code"] == "QUERY_TOO_COMPLEX" and e["extensions"]["limit"] == 2, e
    assert ws_first_error(default, SUB_IN) is None
    e = ws_first_error(tight, SUB_IN)
    assert e["extensions"]["code"] == "BAD_USER_INPUT" and e["extensions"]["limit"] == 2, e


def test_each_subscription_event_gets_the_whole_byte_budget(start):
    """--max-response-bytes bounds each event's answer on its own: the budget a
    subscription carries starts again for every event (64 bytes are charged per
    listed object, so three events of two sourcestamps would pass 300 together)."""
    from test_subscriptions import Inbox

    srv = start("sqlite", "--max-response-bytes", "300", "--poll-interval-ms", "50")
    stamps = [{"stamp": {"repository": f"r{i}"}} for i in range(2)]

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "s", "subscription { buildsetAdded { bsid sourcestamps { ssid } } }")
        await asyncio.sleep(0.5)
        for _ in range(4):
            add_buildset(srv, sourcestamps=stamps)
        events = await inbox.wait("s", 4)
        await ws.close()
        return events, inbox.by_id["s"]

    events, messages = asyncio.run(go())
    assert all(len(e["buildsetAdded"]["sourcestamps"]) == 2 for e in events), messages
    assert not any(m["payload"].get("errors") for m in messages if m["type"] == "next"), messages
