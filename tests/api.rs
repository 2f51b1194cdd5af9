//! The GraphQL API through HTTP, against a server on an ephemeral port, on every
//! backend for everything that depends on SQL.

mod common;

use common::http::{start, Api};
use common::{counts, TestDb};
use serde_json::{json, Value};

on_every_backend! {
    add_get_round_trip => add_get_round_trip;
    complete_and_errors => complete_and_errors;
    add_validation => add_validation;
    every_filter => every_filter;
    order_and_paging => order_and_paging;
    recent => recent;
    node_round_trip => node_round_trip;
    constant_statements_per_page => constant_statements_per_page;
}

const BUILDSET_FIELDS: &str = "id bsid externalIdstring reason submittedAt complete completeAt results
    parentBuildid parentRelationship rebuiltBuildid sourcestampIds
    sourcestamps { id ssid branch revision repository codebase project createdAt
                   patch { patchid level subdir author comment body } }
    properties { name value source }
    property(name: \"int\") { value }
    buildrequests { id buildrequestid bsid builderid priority complete results submittedAt
                    completeAt waitedFor builder { id builderid name description } buildset { bsid } }";

const ADD: &str = "mutation($input: AddBuildsetInput!) { addBuildset(input: $input) {
    bsid brids { builderid buildrequestid } buildset { bsid } } }";

async fn ensure(api: &Api, name: &str) -> i64 {
    api.ok(
        "mutation($n: String!) { ensureBuilder(name: $n, description: \"d\") { builderid } }",
        json!({"n": name}),
    )
    .await["ensureBuilder"]["builderid"]
        .as_i64()
        .unwrap()
}

async fn add(api: &Api, input: Value) -> i64 {
    api.ok(ADD, json!({ "input": input })).await["addBuildset"]["bsid"]
        .as_i64()
        .unwrap()
}

async fn add_get_round_trip(t: TestDb) {
    let api = start(t, &[]).await;
    let b1 = ensure(&api, "linux").await;
    let b2 = ensure(&api, "mac").await;
    assert_eq!(
        ensure(&api, "linux").await,
        b1,
        "ensureBuilder finds by name"
    );
    let props = json!([
        {"name": "int", "value": 1, "source": "S"},
        {"name": "float", "value": 1.0, "source": "S"},
        {"name": "str", "value": "1", "source": "S"},
        {"name": "bool", "value": true, "source": "T"},
        {"name": "null", "value": null, "source": "T"},
        {"name": "list", "value": [1, "a", [2.5], {"x": null}], "source": "U"},
        {"name": "obj", "value": {"b": 1, "a": {"ü": "é"}}, "source": "U"},
        {"name": "neg", "value": -12345678901i64, "source": "U"}
    ]);
    let input = json!({
        "sourcestamps": [
            {"stamp": {"branch": "main", "revision": "abc", "repository": "https://r/x.git",
                       "codebase": "cb", "project": "p",
                       "patch": {"body": "--- a\n+++ b\n", "level": 2, "author": "me", "comment": "c", "subdir": "sub"}}},
            {"stamp": {"branch": "dev"}}
        ],
        "reason": "round trip",
        "properties": props,
        "builderids": [b2, b1],
        "externalIdstring": "ext",
        "submittedAt": "2024-01-02T03:04:05Z",
        "parentBuildid": 7,
        "parentRelationship": "child",
        "rebuiltBuildid": 8,
        "waitedFor": true,
        "priority": 3
    });
    let data = api.ok(ADD, json!({"input": input})).await;
    let bsid = data["addBuildset"]["bsid"].as_i64().unwrap();
    assert_eq!(data["addBuildset"]["buildset"]["bsid"], json!(bsid));
    let brids = data["addBuildset"]["brids"].as_array().unwrap().clone();
    assert_eq!(
        brids
            .iter()
            .map(|b| b["builderid"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![b2, b1]
    );

    let q = format!("query($b: Int!) {{ buildset(bsid: $b) {{ {BUILDSET_FIELDS} }} }}");
    let bs = api.ok(&q, json!({"b": bsid})).await["buildset"].clone();
    assert_eq!(bs["bsid"], json!(bsid));
    assert_eq!(bs["reason"], "round trip");
    assert_eq!(bs["externalIdstring"], "ext");
    assert_eq!(bs["submittedAt"], "2024-01-02T03:04:05+00:00");
    assert_eq!(
        (
            bs["complete"].clone(),
            bs["completeAt"].clone(),
            bs["results"].clone()
        ),
        (json!(false), Value::Null, Value::Null)
    );
    assert_eq!(
        (
            bs["parentBuildid"].clone(),
            bs["parentRelationship"].clone(),
            bs["rebuiltBuildid"].clone()
        ),
        (json!(7), json!("child"), json!(8))
    );
    let stamps = bs["sourcestamps"].as_array().unwrap();
    assert_eq!(stamps.len(), 2);
    assert_eq!(
        bs["sourcestampIds"],
        json!([stamps[0]["ssid"], stamps[1]["ssid"]])
    );
    assert_eq!(stamps[0]["branch"], "main");
    assert_eq!(stamps[0]["repository"], "https://r/x.git");
    assert_eq!(stamps[0]["patch"]["body"], "--- a\n+++ b\n");
    assert_eq!(stamps[0]["patch"]["level"], 2);
    assert_eq!(stamps[0]["patch"]["subdir"], "sub");
    assert_eq!(stamps[0]["patch"]["author"], "me");
    assert_eq!(stamps[1]["branch"], "dev");
    assert_eq!(
        (
            stamps[1]["repository"].clone(),
            stamps[1]["codebase"].clone(),
            stamps[1]["patch"].clone()
        ),
        (json!(""), json!(""), Value::Null)
    );
    // Properties come back sorted by name, values exactly as given (1 vs 1.0 vs "1").
    // Compared as text, so that 1 and 1.0 differ.
    let triples = |list: &Value| -> Vec<(String, String, String)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["value"].to_string(),
                    p["source"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let got = triples(&bs["properties"]);
    let mut want = triples(&props);
    want.sort();
    assert_eq!(got, want);
    assert_eq!(bs["property"]["value"].to_string(), "1");
    let brs = bs["buildrequests"].as_array().unwrap();
    assert_eq!(brs.len(), 2);
    for (br, expect) in brs.iter().zip(&brids) {
        assert_eq!(br["buildrequestid"], expect["buildrequestid"]);
        assert_eq!(br["builderid"], expect["builderid"]);
        assert_eq!(br["builder"]["builderid"], expect["builderid"]);
        assert_eq!(br["buildset"]["bsid"], json!(bsid));
        assert_eq!(
            (
                br["priority"].clone(),
                br["waitedFor"].clone(),
                br["complete"].clone(),
                br["results"].clone()
            ),
            (json!(3), json!(true), json!(false), Value::Null)
        );
        assert_eq!(br["submittedAt"], "2024-01-02T03:04:05+00:00");
    }
    assert_eq!(brs[0]["builder"]["name"], "mac");

    // The same description again: the same sourcestamp; by ssid too; a patch is new.
    let again = add(&api, json!({"sourcestamps": [{"stamp": {"branch": "dev"}}, {"ssid": stamps[0]["ssid"]}], "reason": "r", "builderids": []})).await;
    let ids = api
        .ok(
            "query($b: Int!) { buildset(bsid: $b) { sourcestampIds buildrequests { bsid } } }",
            json!({"b": again}),
        )
        .await;
    assert_eq!(
        ids["buildset"]["sourcestampIds"],
        json!([stamps[1]["ssid"], stamps[0]["ssid"]])
    );
    assert_eq!(ids["buildset"]["buildrequests"], json!([]));

    let props = api
        .ok(
            "query($b: Int!) { buildsetProperties(bsid: $b) { name value source } }",
            json!({"b": bsid}),
        )
        .await;
    assert_eq!(props["buildsetProperties"], bs["properties"]);
    let none = api.ok("{ buildsetProperties(bsid: 999999) { name } buildset(bsid: 999999) { bsid } sourcestamp(ssid: 999999) { ssid } buildrequest(buildrequestid: 999999) { bsid } builder(builderid: 999999) { name } }", json!({})).await;
    assert_eq!(
        none,
        json!({"buildsetProperties": [], "buildset": null, "sourcestamp": null, "buildrequest": null, "builder": null})
    );
    let builders = api
        .ok("{ builders { builderid name description } }", json!({}))
        .await;
    assert_eq!(
        builders["builders"],
        json!([{"builderid": b1, "name": "linux", "description": "d"}, {"builderid": b2, "name": "mac", "description": "d"}])
    );
    let ss = api
        .ok(
            "query($s: Int!) { sourcestamp(ssid: $s) { branch patch { body } } }",
            json!({"s": stamps[0]["ssid"]}),
        )
        .await;
    assert_eq!(
        ss["sourcestamp"],
        json!({"branch": "main", "patch": {"body": "--- a\n+++ b\n"}})
    );
    let br = api.ok("query($r: Int!) { buildrequest(buildrequestid: $r) { builder { name } buildset { reason sourcestamps { branch } } } }", json!({"r": brids[1]["buildrequestid"]})).await;
    assert_eq!(
        br["buildrequest"],
        json!({"builder": {"name": "linux"}, "buildset": {"reason": "round trip", "sourcestamps": [{"branch": "main"}, {"branch": "dev"}]}})
    );
}

const COMPLETE: &str = "mutation($b: Int!, $r: Int!, $at: DateTime) { completeBuildset(bsid: $b, results: $r, completeAt: $at) { bsid complete completeAt results } }";

async fn complete_and_errors(t: TestDb) {
    let api = start(t, &[]).await;
    let b = ensure(&api, "b").await;
    let bsid = add(
        &api,
        json!({"sourcestamps": [{"stamp": {}}], "reason": "r", "builderids": [b]}),
    )
    .await;
    assert_eq!(
        api.err(COMPLETE, json!({"b": bsid, "r": 7})).await,
        ("BAD_USER_INPUT".into(), "results".into())
    );
    for at in [
        json!("yesterday"),
        json!("2024-01-02 03:04:05"),
        json!(1700000000),
    ] {
        assert_eq!(
            api.err(COMPLETE, json!({"b": bsid, "r": 1, "at": at}))
                .await,
            ("BAD_USER_INPUT".into(), "completeAt".into()),
            "completeAt {at}"
        );
    }
    let done = api
        .ok(
            COMPLETE,
            json!({"b": bsid, "r": 4, "at": "2024-05-06T07:08:09+02:00"}),
        )
        .await;
    assert_eq!(
        done["completeBuildset"],
        json!({"bsid": bsid, "complete": true, "completeAt": "2024-05-06T05:08:09+00:00", "results": 4})
    );
    assert_eq!(
        api.err(COMPLETE, json!({"b": bsid, "r": 0})).await.0,
        "ALREADY_COMPLETE"
    );
    assert_eq!(
        api.err(COMPLETE, json!({"b": bsid + 1000, "r": 0})).await.0,
        "NOT_FOUND"
    );
    // The failed attempts changed nothing.
    let bs = api
        .ok(
            "query($b: Int!) { buildset(bsid: $b) { results completeAt } }",
            json!({"b": bsid}),
        )
        .await;
    assert_eq!(
        bs["buildset"],
        json!({"results": 4, "completeAt": "2024-05-06T05:08:09+00:00"})
    );
    // A failed mutation returns no data.
    let body = api.post(COMPLETE, json!({"b": bsid, "r": 0})).await;
    assert_eq!(body["data"], Value::Null);
}

async fn add_validation(t: TestDb) {
    let api = start(t, &[]).await;
    let b = ensure(&api, "b").await;
    let before = counts(&api.t.db).await;
    let long = "x".repeat(257);
    let cases = [
        (
            json!({"sourcestamps": [], "reason": "r", "builderids": [b]}),
            "sourcestamps",
        ),
        (
            json!({"sourcestamps": [{"ssid": 424242}], "reason": "r", "builderids": [b]}),
            "sourcestamps",
        ),
        (
            json!({"sourcestamps": [{"stamp": {"branch": "n"}}], "reason": "r", "builderids": [424242]}),
            "builderids",
        ),
        (
            json!({"sourcestamps": [{"stamp": {}}, {"stamp": {}}], "reason": "r", "builderids": [b]}),
            "sourcestamps",
        ),
        (
            json!({"sourcestamps": [{"stamp": {}}], "reason": long, "builderids": [b]}),
            "reason",
        ),
        (
            json!({"sourcestamps": [{"stamp": {"branch": long}}], "reason": "r", "builderids": [b]}),
            "branch",
        ),
        (
            json!({"sourcestamps": [{"stamp": {}}], "reason": "r", "builderids": [b], "properties": [{"name": long, "value": 1, "source": "s"}]}),
            "properties.name",
        ),
    ];
    for (input, field) in cases {
        assert_eq!(
            api.err(ADD, json!({"input": input})).await,
            ("BAD_USER_INPUT".into(), field.into()),
            "{input}"
        );
    }
    // oneOf: both or neither of ssid / stamp.
    for bad in [json!({"ssid": 1, "stamp": {}}), json!({})] {
        let input = json!({"sourcestamps": [bad], "reason": "r", "builderids": [b]});
        assert_eq!(
            api.err(ADD, json!({"input": input})).await,
            ("BAD_USER_INPUT".into(), "input.sourcestamps.0".into())
        );
    }
    let input = json!({"sourcestamps": [{"stamp": {}}], "reason": "r", "builderids": [b], "submittedAt": "not a date"});
    assert_eq!(
        api.err(ADD, json!({"input": input})).await,
        ("BAD_USER_INPUT".into(), "submittedAt".into())
    );
    assert_eq!(
        counts(&api.t.db).await,
        before,
        "rejected adds wrote nothing"
    );
}

/// Six buildsets: i in 0..6 with reason `reason_i%` (none for 4), branch br{i%2}
/// (none for 5), repository repo{i%3}, submitted at 1000 + (i/2)*10 seconds, builder
/// f1 for all and f2 for odd i; 0 and 2 FAILURE, 1 SUCCESS.
async fn fixture(api: &Api) -> (Vec<i64>, i64) {
    let f1 = ensure(api, "f1").await;
    let f2 = ensure(api, "f2").await;
    let mut ids = Vec::new();
    for i in 0..6i64 {
        let mut stamp = json!({"repository": format!("repo{}", i % 3), "project": format!("proj{}", i % 2), "codebase": "cb"});
        if i != 5 {
            stamp["branch"] = json!(format!("br{}", i % 2));
        }
        let mut input = json!({
            "sourcestamps": [{"stamp": stamp}],
            "reason": format!("reason_{i}%"),
            "externalIdstring": format!("ext{i}"),
            "builderids": if i % 2 == 0 { vec![f1] } else { vec![f1, f2] },
            "submittedAt": chrono_at(1000 + (i / 2) * 10),
        });
        if i == 3 {
            input["parentBuildid"] = json!(77);
            input["rebuiltBuildid"] = json!(78);
        }
        let bsid = add(api, input).await;
        if i == 4 {
            // Reason is required by the API; null it the way another writer could.
            let b = api.t.db.get_database_backend();
            api.t
                .db
                .execute_raw(sea_orm::Statement::from_string(
                    b,
                    format!("UPDATE buildsets SET reason = NULL WHERE id = {bsid}"),
                ))
                .await
                .unwrap();
        }
        ids.push(bsid);
    }
    for (i, r, at) in [(0, 2, 5000), (1, 0, 4000), (2, 2, 4000)] {
        api.ok(COMPLETE, json!({"b": ids[i], "r": r, "at": chrono_at(at)}))
            .await;
    }
    (ids, f2)
}

use sea_orm::ConnectionTrait;

fn chrono_at(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap()
        .to_rfc3339()
}

async fn bsids(api: &Api, args: &str, vars: Value) -> Vec<i64> {
    let q = format!(
        "query($w: BuildsetFilter) {{ buildsets({args}) {{ nodes {{ bsid }} totalCount }} }}"
    );
    let data = api.ok(&q, vars.clone()).await;
    let ids: Vec<i64> = data["buildsets"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["bsid"].as_i64().unwrap())
        .collect();
    assert_eq!(
        data["buildsets"]["totalCount"].as_i64().unwrap() as usize,
        ids.len(),
        "totalCount of {args} {vars}"
    );
    ids
}

async fn every_filter(t: TestDb) {
    let api = start(t, &[]).await;
    let (ids, f2) = fixture(&api).await;
    let pick = |idx: &[usize]| idx.iter().map(|&i| ids[i]).collect::<Vec<_>>();
    let cases: Vec<(Value, Vec<usize>)> = vec![
        (json!({"bsid": {"eq": ids[2]}}), vec![2]),
        (json!({"bsid": {"ne": ids[2], "lt": ids[4]}}), vec![0, 1, 3]),
        (json!({"bsid": {"le": ids[1]}}), vec![0, 1]),
        (json!({"bsid": {"gt": ids[3]}}), vec![4, 5]),
        (json!({"bsid": {"ge": ids[3]}}), vec![3, 4, 5]),
        (json!({"bsid": {"in": [ids[1], ids[4]]}}), vec![1, 4]),
        (
            json!({"bsid": {"notIn": [ids[1], ids[4]]}}),
            vec![0, 2, 3, 5],
        ),
        (json!({"bsid": {"isNull": false}}), vec![0, 1, 2, 3, 4, 5]),
        (json!({"reason": {"eq": "reason_1%"}}), vec![1]),
        (json!({"reason": {"ne": "reason_1%"}}), vec![0, 2, 3, 5]),
        (json!({"reason": {"lt": "reason_2%"}}), vec![0, 1]),
        (json!({"reason": {"le": "reason_2%"}}), vec![0, 1, 2]),
        (json!({"reason": {"gt": "reason_3%"}}), vec![5]),
        (json!({"reason": {"ge": "reason_3%"}}), vec![3, 5]),
        (json!({"reason": {"in": ["reason_0%", "nope"]}}), vec![0]),
        (
            json!({"reason": {"notIn": ["reason_0%"]}}),
            vec![1, 2, 3, 5],
        ),
        (json!({"reason": {"isNull": true}}), vec![4]),
        (json!({"reason": {"contains": "_3%"}}), vec![3]),
        (json!({"reason": {"startsWith": "reason_5"}}), vec![5]),
        (json!({"externalIdstring": {"eq": "ext3"}}), vec![3]),
        (
            json!({"externalIdstring": {"startsWith": "ext", "ne": "ext0"}}),
            vec![1, 2, 3, 4, 5],
        ),
        (json!({"submittedAt": {"eq": chrono_at(1010)}}), vec![2, 3]),
        (json!({"submittedAt": {"gt": chrono_at(1010)}}), vec![4, 5]),
        (
            json!({"submittedAt": {"le": chrono_at(1010)}}),
            vec![0, 1, 2, 3],
        ),
        (
            json!({"submittedAt": {"in": [chrono_at(1000), chrono_at(1020)]}}),
            vec![0, 1, 4, 5],
        ),
        (json!({"completeAt": {"eq": chrono_at(4000)}}), vec![1, 2]),
        (json!({"completeAt": {"ne": chrono_at(4000)}}), vec![0]),
        (json!({"completeAt": {"isNull": true}}), vec![3, 4, 5]),
        (
            json!({"completeAt": {"ge": chrono_at(4000), "lt": chrono_at(5000)}}),
            vec![1, 2],
        ),
        (json!({"results": {"eq": 2}}), vec![0, 2]),
        (json!({"results": {"ne": 2}}), vec![1]),
        (json!({"results": {"lt": 2}}), vec![1]),
        (json!({"results": {"isNull": true}}), vec![3, 4, 5]),
        (json!({"results": {"notIn": [0]}}), vec![0, 2]),
        (json!({"parentBuildid": {"eq": 77}}), vec![3]),
        (json!({"parentBuildid": {"isNull": false}}), vec![3]),
        (json!({"rebuiltBuildid": {"ge": 78}}), vec![3]),
        (json!({"rebuiltBuildid": {"ne": 78}}), vec![]),
        (json!({"branch": {"eq": "br1"}}), vec![1, 3]),
        (json!({"branch": {"isNull": true}}), vec![5]),
        (json!({"branch": {"in": ["br0"]}}), vec![0, 2, 4]),
        (json!({"repository": {"eq": "repo2"}}), vec![2, 5]),
        (json!({"repository": {"contains": "po1"}}), vec![1, 4]),
        (json!({"project": {"eq": "proj1"}}), vec![1, 3, 5]),
        (json!({"codebase": {"eq": "cb"}}), vec![0, 1, 2, 3, 4, 5]),
        (json!({"codebase": {"ne": "cb"}}), vec![]),
        (json!({"builderid": {"eq": f2}}), vec![1, 3, 5]),
        (json!({"builderid": {"in": [f2, 424242]}}), vec![1, 3, 5]),
        (
            json!({"and": [{"branch": {"eq": "br0"}}, {"results": {"eq": 2}}]}),
            vec![0, 2],
        ),
        (
            json!({"or": [{"bsid": {"eq": ids[0]}}, {"reason": {"isNull": true}}]}),
            vec![0, 4],
        ),
        (json!({"not": {"builderid": {"eq": f2}}}), vec![0, 2, 4]),
        (
            json!({"not": {"or": [{"results": {"eq": 2}}, {"branch": {"eq": "br1"}}]}, "complete": {}}),
            vec![],
        ),
    ];
    for (filter, expect) in cases {
        if filter.get("complete").is_some() {
            // `complete` is not a filter field: the request is rejected, not ignored.
            let q = "query($w: BuildsetFilter) { buildsets(where: $w) { totalCount } }";
            assert_eq!(api.err(q, json!({"w": filter})).await.0, "BAD_USER_INPUT");
            continue;
        }
        assert_eq!(
            bsids(&api, "where: $w", json!({"w": filter})).await,
            pick(&expect),
            "filter {filter}"
        );
    }
    assert_eq!(
        bsids(
            &api,
            "complete: true, where: $w",
            json!({"w": {"branch": {"eq": "br0"}}})
        )
        .await,
        pick(&[0, 2])
    );
    assert_eq!(
        bsids(&api, "complete: false, where: $w", json!({"w": null})).await,
        pick(&[3, 4, 5])
    );
}

async fn page(api: &Api, args: &str, vars: Value) -> Value {
    let decls: Vec<&str> = [
        ("$o", "$o: [BuildsetOrder!]"),
        ("$a", "$a: String"),
        ("$b", "$b: String"),
        ("$f", "$f: Int"),
        ("$l", "$l: Int"),
    ]
    .iter()
    .filter(|(v, _)| args.contains(v))
    .map(|(_, d)| *d)
    .collect();
    let decls = if decls.is_empty() {
        String::new()
    } else {
        format!("({})", decls.join(", "))
    };
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({args})")
    };
    let q = format!("query{decls} {{
        buildsets{args} {{ edges {{ cursor node {{ bsid }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} totalCount }} }}");
    let vars = match vars {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| decls.contains(&format!("${k}:")))
                .collect(),
        ),
        v => v,
    };
    api.ok(&q, vars).await["buildsets"].clone()
}

fn edge_ids(p: &Value) -> Vec<i64> {
    p["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["bsid"].as_i64().unwrap())
        .collect()
}

async fn order_and_paging(t: TestDb) {
    let api = start(t, &[]).await;
    let (ids, _) = fixture(&api).await;
    let pick = |idx: &[usize]| idx.iter().map(|&i| ids[i]).collect::<Vec<_>>();
    let orders = [
        (
            json!([{"field": "BSID", "direction": "DESC"}]),
            pick(&[5, 4, 3, 2, 1, 0]),
        ),
        (
            json!([{"field": "SUBMITTED_AT", "direction": "DESC"}]),
            pick(&[4, 5, 2, 3, 0, 1]),
        ),
        (
            json!([{"field": "SUBMITTED_AT"}]),
            pick(&[0, 1, 2, 3, 4, 5]),
        ),
        (
            json!([{"field": "COMPLETE_AT", "direction": "ASC"}]),
            pick(&[1, 2, 0, 3, 4, 5]),
        ),
        (
            json!([{"field": "RESULTS", "direction": "DESC"}]),
            pick(&[3, 4, 5, 0, 2, 1]),
        ),
        (
            json!([{"field": "REASON", "direction": "ASC"}]),
            pick(&[0, 1, 2, 3, 5, 4]),
        ),
        (
            json!([{"field": "RESULTS"}, {"field": "BSID", "direction": "DESC"}]),
            pick(&[1, 2, 0, 5, 4, 3]),
        ),
    ];
    for (order, expect) in &orders {
        let all = page(&api, "orderBy: $o", json!({"o": order})).await;
        assert_eq!(&edge_ids(&all), expect, "order {order}");
        assert_eq!(all["totalCount"], json!(6));
        // Forwards two at a time, then backwards two at a time.
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let p = page(
                &api,
                "orderBy: $o, first: $f, after: $a",
                json!({"o": order, "f": 2, "a": after}),
            )
            .await;
            assert_eq!(p["pageInfo"]["hasPreviousPage"], json!(!after.is_null()));
            seen.extend(edge_ids(&p));
            after = p["pageInfo"]["endCursor"].clone();
            if p["pageInfo"]["hasNextPage"] == json!(false) {
                break;
            }
        }
        assert_eq!(&seen, expect, "forward {order}");
        let mut seen: Vec<i64> = Vec::new();
        let mut before = Value::Null;
        loop {
            let p = page(
                &api,
                "orderBy: $o, last: $l, before: $b",
                json!({"o": order, "l": 2, "b": before}),
            )
            .await;
            let mut chunk = edge_ids(&p);
            chunk.extend(seen);
            seen = chunk;
            before = p["pageInfo"]["startCursor"].clone();
            if p["pageInfo"]["hasPreviousPage"] == json!(false) {
                break;
            }
        }
        assert_eq!(&seen, expect, "backward {order}");
    }
    // Rows added between pages: the cursor still works and the new row shows up.
    let first = page(&api, "first: $f", json!({"f": 4})).await;
    let late = add(
        &api,
        json!({"sourcestamps": [{"stamp": {}}], "reason": "late", "builderids": []}),
    )
    .await;
    let rest = page(
        &api,
        "first: $f, after: $a",
        json!({"f": 10, "a": first["pageInfo"]["endCursor"]}),
    )
    .await;
    assert_eq!(edge_ids(&rest), vec![ids[4], ids[5], late]);
    let back = page(
        &api,
        "last: $l, before: $b",
        json!({"l": 10, "b": rest["edges"][0]["cursor"]}),
    )
    .await;
    assert_eq!(edge_ids(&back), pick(&[0, 1, 2, 3]));
    assert_eq!(back["pageInfo"]["hasPreviousPage"], json!(false));
    // Bounds and bad cursors.
    let q = "query($f: Int, $l: Int, $a: String) { buildsets(first: $f, last: $l, after: $a) { totalCount } }";
    assert_eq!(
        api.err(q, json!({"f": 1001})).await,
        ("BAD_USER_INPUT".into(), "first".into())
    );
    assert_eq!(
        api.err(q, json!({"l": -1})).await,
        ("BAD_USER_INPUT".into(), "last".into())
    );
    assert_eq!(
        api.err(q, json!({"a": "not-a-cursor"})).await,
        ("BAD_USER_INPUT".into(), "after".into())
    );
    // A cursor of another ordering is refused, naming the argument (moved here from
    // tests/store.rs: cursor text is the GraphQL layer's now).
    let one = page(&api, "first: $f", json!({"f": 1})).await;
    let other =
        "query($b: String) { buildsets(orderBy: [{field: REASON}], before: $b) { totalCount } }";
    assert_eq!(
        api.err(other, json!({"b": one["edges"][0]["cursor"]}))
            .await,
        ("BAD_USER_INPUT".into(), "before".into())
    );
    let empty = page(&api, "first: $f", json!({"f": 0})).await;
    assert_eq!(edge_ids(&empty), Vec::<i64>::new());
    assert_eq!(empty["pageInfo"]["hasNextPage"], json!(true));
    // The default page size is 100.
    let n = page(&api, "", json!({})).await;
    assert_eq!(edge_ids(&n).len(), 7);
}

async fn recent(t: TestDb) {
    let api = start(t, &[]).await;
    let (ids, _) = fixture(&api).await;
    let pick = |idx: &[usize]| idx.iter().map(|&i| ids[i]).collect::<Vec<_>>();
    let q = "query($c: Int!, $b: String, $r: String, $k: Boolean) { recentBuildsets(count: $c, branch: $b, repository: $r, complete: $k) { bsid } }";
    let api = &api;
    let run = |vars: Value| async move {
        api.ok(q, vars).await["recentBuildsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["bsid"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(json!({"c": 2})).await, pick(&[4, 5]));
    assert_eq!(run(json!({"c": 10, "b": "br1"})).await, pick(&[1, 3]));
    assert_eq!(run(json!({"c": 10, "r": "repo0"})).await, pick(&[0, 3]));
    assert_eq!(
        run(json!({"c": 10, "b": "br0", "r": "repo0"})).await,
        pick(&[0])
    );
    assert_eq!(run(json!({"c": 10, "k": true})).await, pick(&[0, 1, 2]));
    assert_eq!(run(json!({"c": 1, "k": false})).await, pick(&[5]));
    assert_eq!(
        api.err(q, json!({"c": -1})).await,
        ("BAD_USER_INPUT".into(), "count".into())
    );
}

async fn node_round_trip(t: TestDb) {
    let api = start(t, &[]).await;
    let b = ensure(&api, "n").await;
    let bsid = add(
        &api,
        json!({"sourcestamps": [{"stamp": {"branch": "x"}}], "reason": "n", "builderids": [b]}),
    )
    .await;
    let q = "query($b: Int!) { buildset(bsid: $b) { id sourcestamps { id ssid } buildrequests { id buildrequestid builder { id builderid } } } }";
    let bs = api.ok(q, json!({"b": bsid})).await["buildset"].clone();
    let node_q = "query($id: ID!) { node(id: $id) { id __typename
        ... on Buildset { bsid } ... on SourceStamp { ssid } ... on BuildRequest { buildrequestid } ... on Builder { builderid } } }";
    let cases = [
        (bs["id"].clone(), "Buildset", "bsid", json!(bsid)),
        (
            bs["sourcestamps"][0]["id"].clone(),
            "SourceStamp",
            "ssid",
            bs["sourcestamps"][0]["ssid"].clone(),
        ),
        (
            bs["buildrequests"][0]["id"].clone(),
            "BuildRequest",
            "buildrequestid",
            bs["buildrequests"][0]["buildrequestid"].clone(),
        ),
        (
            bs["buildrequests"][0]["builder"]["id"].clone(),
            "Builder",
            "builderid",
            json!(b),
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (id, typename, key, value) in cases {
        assert!(seen.insert(id.to_string()), "ids are globally unique");
        let node = api.ok(node_q, json!({"id": id})).await["node"].clone();
        assert_eq!(node["__typename"], typename);
        assert_eq!(node["id"], id);
        assert_eq!(node[key], value);
    }
    assert_eq!(
        api.err(node_q, json!({"id": "garbage"})).await,
        ("BAD_USER_INPUT".into(), "id".into())
    );
    let missing = api.ok(node_q, json!({"id": "QnVpbGRzZXQ6OTk5OTk5"})).await;
    assert_eq!(missing["node"], Value::Null);
}

/// Every nested field of a page costs one statement per relation level, whatever the
/// page size: a 10-buildset page and a 100-buildset page cost the same.
async fn constant_statements_per_page(t: TestDb) {
    let api = start(t, &[]).await;
    let b1 = ensure(&api, "s1").await;
    let b2 = ensure(&api, "s2").await;
    for i in 0..100 {
        add(&api, json!({
            "sourcestamps": [
                {"stamp": {"branch": format!("b{i}")}},
                {"stamp": {"branch": "p", "patch": {"body": format!("patch {i}")}}}
            ],
            "reason": "load",
            "properties": [{"name": "a", "value": i, "source": "s"}, {"name": "b", "value": [i], "source": "s"}],
            "builderids": [b1, b2]
        }))
        .await;
    }
    let q = format!("query($f: Int) {{ buildsets(first: $f) {{ totalCount pageInfo {{ hasNextPage }} edges {{ cursor node {{ bsid }} }} nodes {{ {BUILDSET_FIELDS} }} }} }}");
    let mut costs = Vec::new();
    for size in [10, 100] {
        let before = api.t.statement_count();
        let data = api.ok(&q, json!({"f": size})).await;
        costs.push(api.t.statement_count() - before);
        let nodes = data["buildsets"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), size);
        assert!(nodes
            .iter()
            .all(|n| n["sourcestamps"].as_array().unwrap().len() == 2
                && n["sourcestamps"][1]["patch"]["body"]
                    .as_str()
                    .unwrap()
                    .starts_with("patch")
                && n["properties"].as_array().unwrap().len() == 2
                && n["buildrequests"].as_array().unwrap().len() == 2
                && n["buildrequests"][1]["builder"]["name"] == "s2"));
    }
    println!(
        "statements per page: 10 buildsets -> {}, 100 buildsets -> {}",
        costs[0], costs[1]
    );
    assert_eq!(
        costs[0], costs[1],
        "statement count grows with the page size"
    );
    // page + count + (stamps joined with their patches, properties, requests) +
    // builders; beyond 100 buildsets, stamp links, stamps and patches are separate.
    assert!(costs[1] <= 8, "{} statements for one page", costs[1]);
}
