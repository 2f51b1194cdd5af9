//! Property-based tests: addBuildset, completeBuildset, the filters and the cursors
//! driven over HTTP with arbitrary strings (Unicode, NUL, lone surrogates in the JSON
//! text, 10 kB values), JSON values (deep, wide, huge numbers), times (year 1, 9999,
//! offsets, fractions, garbage) and ids (0, negative, beyond i32). Every case
//! succeeds or answers a GraphQL error with a client's code (BAD_USER_INPUT naming
//! the field for a mutation's input, BAD_REQUEST for a body that is not JSON);
//! never a crash, a 5xx or INTERNAL_SERVER_ERROR. A failed
//! mutation leaves every table unchanged.
//!
//! The bodies are written and read as JSON text, so a case can hold what serde_json
//! would never produce (lone surrogates, integers beyond 64 bits). SQLite runs
//! `CASES` cases per property (fixed, so CI's time is too); PostgreSQL and MariaDB
//! a quarter of that. `PROPTEST_CASES` overrides both.

mod common;

use std::sync::Arc;

use common::http::{start, Api};
use common::{counts, fresh, Backend};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

const CASES: u32 = 96;

/// A JSON string literal for `s`, sometimes with a lone surrogate escape spliced in.
fn json_string(s: &str, surrogate: bool) -> String {
    let lit = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    if surrogate {
        format!("\"\\ud800{}", &lit[1..])
    } else {
        lit
    }
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>().prop_map(|s| s.chars().take(40).collect()),
        8 => "[a-z]{0,12}",
        1 => "\\PC{0,8}\u{0}\\PC{0,4}",
        1 => "[😀😁é中\u{FFFF}\u{10FFFF}]{1,5}",
        1 => Just("x".repeat(10_000)),
        1 => Just("y".repeat(300)),
        1 => Just(String::new()),
    ]
}

/// (JSON text, whether it is a plain value serde_json would also write).
fn arb_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        10 => Just("null".to_owned()),
        10 => any::<bool>().prop_map(|b| b.to_string()),
        15 => any::<i64>().prop_map(|i| i.to_string()),
        10 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::to_string(&f).unwrap_or_else(|_| "0".into())),
        1 => Just("18446744073709551616".to_owned()),
        1 => Just("-99999999999999999999999".to_owned()),
        1 => Just("1e400".to_owned()),
        1 => Just("123456789012345678901234567890.5".to_owned()),
        20 => arb_text().prop_map(|s| json_string(&s, false)),
        1 => arb_text().prop_map(|s| json_string(&s, true)),
    ];
    let tree = leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((arb_text(), inner), 0..5).prop_map(|kv| {
                let fields: Vec<String> = kv
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", json_string(k, false)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    });
    prop_oneof![
        16 => tree,
        1 => (60usize..140).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        1 => (1usize..3000).prop_map(|n| format!("[{}]", vec!["0"; n].join(","))),
    ]
}

fn arb_time() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"0001-01-01T00:00:00Z\"".to_owned()),
        Just("\"9999-12-31T23:59:59Z\"".to_owned()),
        Just("\"1970-01-01T00:00:00Z\"".to_owned()),
        Just("\"2038-01-19T03:14:08Z\"".to_owned()),
        Just("\"2026-02-30T00:00:00Z\"".to_owned()),
        Just("true".to_owned()),
        Just("1700000000".to_owned()),
        (
            1i32..10_000,
            1u32..13,
            1u32..29,
            0u32..24,
            -14i32..15,
            0u32..1_000_000_000
        )
            .prop_map(|(y, mo, d, h, off, frac)| format!(
                "\"{y:04}-{mo:02}-{d:02}T{h:02}:30:00.{frac:09}{}{:02}:00\"",
                if off < 0 { '-' } else { '+' },
                off.abs()
            )),
        arb_text().prop_map(|s| json_string(&s, false)),
    ]
}

fn arb_id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("-1".to_owned()),
        Just("2147483647".to_owned()),
        Just("2147483648".to_owned()),
        Just("-2147483649".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("1.5".to_owned()),
        Just("\"1\"".to_owned()),
        (-5i64..50).prop_map(|i| i.to_string()),
    ]
}

/// One addBuildset input as JSON text, with its fields drawn independently.
fn arb_add_input() -> impl Strategy<Value = String> {
    let stamp = prop_oneof![
        4 => (arb_text(), arb_text(), proptest::option::of(arb_text())).prop_map(|(branch, repo, rev)| {
            let rev = rev.map_or("null".to_owned(), |r| json_string(&r, false));
            format!(
                "{{\"stamp\":{{\"branch\":{},\"repository\":{},\"revision\":{rev}}}}}",
                json_string(&branch, false),
                json_string(&repo, false)
            )
        }),
        1 => (arb_text(), prop::bool::weighted(0.1)).prop_map(|(body, s)| format!(
            "{{\"stamp\":{{\"branch\":\"p\",\"patch\":{{\"body\":{},\"level\":1,\"author\":\"a\",\"comment\":\"c\"}}}}}}",
            json_string(&body, s)
        )),
        1 => arb_id().prop_map(|id| format!("{{\"ssid\":{id}}}")),
    ];
    let property = (
        arb_text(),
        arb_json(),
        arb_text(),
        prop::bool::weighted(0.03),
    )
        .prop_map(|(name, value, source, surrogate)| {
            format!(
                "{{\"name\":{},\"value\":{value},\"source\":{}}}",
                json_string(&name, surrogate),
                json_string(&source, false)
            )
        });
    // Each hazard is drawn rarely enough that about half the inputs are valid, so
    // that both the success and the refusal paths are exercised.
    (
        arb_text(),
        prop::bool::weighted(0.03),
        prop::collection::vec(stamp, 1..3),
        prop::collection::vec(property, 0..3),
        proptest::option::weighted(0.15, arb_id()).prop_map(|b| b.into_iter().collect::<Vec<_>>()),
        proptest::option::weighted(0.3, arb_time()),
        proptest::option::weighted(0.3, arb_text()),
    )
        .prop_map(
            |(reason, surrogate, stamps, props, extra_builders, time, ext)| {
                let mut builders = vec!["1".to_owned()];
                builders.extend(extra_builders);
                let mut fields = vec![
                    format!("\"reason\":{}", json_string(&reason, surrogate)),
                    format!("\"sourcestamps\":[{}]", stamps.join(",")),
                    format!("\"properties\":[{}]", props.join(",")),
                    format!("\"builderids\":[{}]", builders.join(",")),
                ];
                if let Some(t) = time {
                    fields.push(format!("\"submittedAt\":{t}"));
                }
                if let Some(e) = ext {
                    fields.push(format!("\"externalIdstring\":{}", json_string(&e, false)));
                }
                format!("{{{}}}", fields.join(","))
            },
        )
}

fn arb_filter() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "bsid",
        "results",
        "builderid",
        "reason",
        "branch",
        "repository",
        "externalIdstring",
        "submittedAt",
        "completeAt",
    ]);
    let op = prop::sample::select(vec![
        "eq",
        "ne",
        "lt",
        "ge",
        "in",
        "notIn",
        "isNull",
        "contains",
        "startsWith",
    ]);
    let value = prop_oneof![
        arb_id(),
        arb_time(),
        arb_text().prop_map(|s| json_string(&s, false)),
        prop::collection::vec(arb_id(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
        prop::collection::vec(arb_text(), 0..3).prop_map(|v| {
            let items: Vec<String> = v.iter().map(|s| json_string(s, false)).collect();
            format!("[{}]", items.join(","))
        }),
        Just("true".to_owned()),
    ];
    let leaf = (field, op, value).prop_map(|(f, o, v)| format!("{{\"{f}\":{{\"{o}\":{v}}}}}"));
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("{{\"and\":[{}]}}", v.join(","))),
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("{{\"or\":[{}]}}", v.join(","))),
            inner.prop_map(|f| format!("{{\"not\":{f}}}")),
        ]
    })
}

fn arb_cursor() -> impl Strategy<Value = String> {
    use base64::Engine;
    prop_oneof![
        arb_text(),
        arb_json().prop_map(|j| base64::engine::general_purpose::STANDARD.encode(j)),
        arb_json().prop_map(|j| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(j)),
    ]
}

/// Posts a raw JSON body; the status and the parsed body (`None`: not JSON).
async fn post_raw(api: &Api, body: String) -> (u16, Option<Value>) {
    let resp = api
        .client
        .post(api.url("/graphql"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).ok())
}

/// Checks an answer: no 5xx, JSON, and either data or errors with a client's code.
/// Returns whether it was a success.
fn judge(
    status: u16,
    body: &Option<Value>,
    allowed: &[&str],
    want_field: bool,
) -> Result<bool, TestCaseError> {
    prop_assert!(status < 500, "HTTP {status}: {body:?}");
    let Some(body) = body else {
        return Err(TestCaseError::fail(format!("HTTP {status}, not JSON")));
    };
    let Some(errors) = body.get("errors").and_then(Value::as_array) else {
        prop_assert!(status == 200, "HTTP {status} without errors: {body}");
        return Ok(true);
    };
    for e in errors {
        let code = e["extensions"]["code"].as_str().unwrap_or("");
        prop_assert!(allowed.contains(&code), "code {code:?}: {e}");
        // A body that is not JSON at all names no field; anything inside one does.
        if want_field && code == "BAD_USER_INPUT" && status == 200 {
            prop_assert!(e["extensions"]["field"].is_string(), "no field: {e}");
        }
    }
    Ok(false)
}

const ADD: &str = "mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid buildset { reason externalIdstring submittedAt sourcestamps { branch repository revision patch { body } } properties { name value source } buildrequests { builderid } } } }";
const COMPLETE: &str = "mutation($b: Int!, $r: Int!, $t: DateTime) { completeBuildset(bsid: $b, results: $r, completeAt: $t) { bsid results completeAt } }";
const PAGE: &str = "query($w: BuildsetFilter, $a: String, $b: String) { buildsets(where: $w, first: 5, after: $a, before: $b, orderBy: [{field: REASON, direction: DESC}]) { totalCount nodes { bsid reason } pageInfo { endCursor } } }";

fn runner(backend: Backend) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(match backend {
            Backend::Sqlite => CASES,
            _ => CASES / 4,
        });
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    })
}

/// A server with one builder and a few buildsets, on `backend`; None when skipped.
fn server(rt: &tokio::runtime::Runtime, backend: Backend, name: &str) -> Option<Arc<Api>> {
    rt.block_on(async {
        let t = fresh(backend, name).await?;
        let api = start(t, &[]).await;
        api.ok(
            "mutation { ensureBuilder(name: \"prop\") { builderid } }",
            json!({}),
        )
        .await;
        for reason in ["a", "b", "c"] {
            api.ok(
                "mutation($r: String!) { addBuildset(input: {reason: $r, sourcestamps: [{stamp: {branch: \"main\"}}], builderids: [1]}) { bsid } }",
                json!({"r": reason}),
            )
            .await;
        }
        Some(Arc::new(api))
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn add_buildset_property(backend: Backend) {
    let rt = runtime();
    let Some(api) = server(&rt, backend, "prop_add") else {
        return;
    };
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let check = |input: String| {
        rt.block_on(async {
            let before = counts(&api.t.db).await;
            let body = format!(
                "{{\"query\":{},\"variables\":{{\"in\":{input}}}}}",
                json_string(ADD, false)
            );
            let (status, answer) = post_raw(&api, body).await;
            let ok = judge(status, &answer, &["BAD_USER_INPUT", "BAD_REQUEST"], true)?;
            let after = counts(&api.t.db).await;
            let tally = if ok { &accepted } else { &refused };
            tally.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if ok {
                let b = &answer.as_ref().expect("judged")["data"]["addBuildset"];
                prop_assert!(b["bsid"].is_i64(), "{b}");
                prop_assert!(after[0] == before[0] + 1, "{before:?} -> {after:?}");
                // What was written reads back as given.
                let sent: Value = serde_json::from_str(&input).expect("valid when accepted");
                prop_assert_eq!(&b["buildset"]["reason"], &sent["reason"]);
                let props = b["buildset"]["properties"].as_array().expect("list");
                prop_assert_eq!(
                    props.len(),
                    sent["properties"].as_array().map_or(0, Vec::len)
                );
            } else {
                prop_assert_eq!(before, after, "a failed addBuildset changed the tables");
            }
            Ok(())
        })
    };
    // About one drawn input in eight is valid, so 24 cases (PostgreSQL, MariaDB) drew
    // none in one run of twenty: a plain valid input and a plain invalid one go
    // through the same check first, so that both paths are always exercised.
    for fixed in [
        r#"{"reason":"r","sourcestamps":[{"stamp":{"branch":"b","repository":"r"}}],"properties":[],"builderids":[1]}"#,
        r#"{"reason":"r","sourcestamps":[],"properties":[],"builderids":[1]}"#,
    ] {
        if let Err(e) = check(fixed.to_owned()) {
            panic!("{backend:?}: {fixed}: {e}");
        }
    }
    let result = runner(backend).run(&arb_add_input(), check);
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    eprintln!("addBuildset on {backend:?}: {accepted} accepted, {refused} refused");
    // Both paths must have been exercised, or the property says little.
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

fn complete_buildset_property(backend: Backend) {
    let rt = runtime();
    let Some(api) = server(&rt, backend, "prop_complete") else {
        return;
    };
    let strategy = (arb_id(), arb_id(), proptest::option::of(arb_time()));
    let result = runner(backend).run(&strategy, |(bsid, results, time)| {
        rt.block_on(async {
            let before = counts(&api.t.db).await;
            let t = time.unwrap_or_else(|| "null".into());
            let body = format!(
                "{{\"query\":{},\"variables\":{{\"b\":{bsid},\"r\":{results},\"t\":{t}}}}}",
                json_string(COMPLETE, false)
            );
            let (status, answer) = post_raw(&api, body).await;
            let ok = judge(
                status,
                &answer,
                &[
                    "BAD_USER_INPUT",
                    "BAD_REQUEST",
                    "NOT_FOUND",
                    "ALREADY_COMPLETE",
                ],
                false,
            )?;
            if !ok {
                prop_assert_eq!(before, counts(&api.t.db).await);
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
}

fn filter_and_cursor_property(backend: Backend) {
    let rt = runtime();
    let Some(api) = server(&rt, backend, "prop_filter") else {
        return;
    };
    let strategy = (
        proptest::option::of(arb_filter()),
        proptest::option::of(arb_cursor()),
        proptest::option::of(arb_cursor()),
    );
    let result = runner(backend).run(&strategy, |(filter, after, before)| {
        rt.block_on(async {
            let lit = |c: Option<String>| c.map_or("null".to_owned(), |c| json_string(&c, false));
            let body = format!(
                "{{\"query\":{},\"variables\":{{\"w\":{},\"a\":{},\"b\":{}}}}}",
                json_string(PAGE, false),
                filter.unwrap_or_else(|| "null".into()),
                lit(after),
                lit(before)
            );
            let (status, answer) = post_raw(&api, body).await;
            judge(
                status,
                &answer,
                &["BAD_USER_INPUT", "BAD_REQUEST", "QUERY_TOO_COMPLEX"],
                false,
            )?;
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
}

macro_rules! on_backends {
    ($($name:ident => $body:ident;)+) => {$(
        mod $name {
            use super::*;
            #[test]
            fn sqlite() {
                $body(Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                $body(Backend::Postgres)
            }
            #[test]
            fn mysql() {
                $body(Backend::MySql)
            }
        }
    )+};
}

on_backends! {
    add_buildset => add_buildset_property;
    complete_buildset => complete_buildset_property;
    filters_and_cursors => filter_and_cursor_property;
}
