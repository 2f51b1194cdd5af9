//! The connector's operations, on every backend (one body per test, run three times).

mod common;

use std::collections::HashSet;

use buildsets_graphql::store::query::{
    self, Field, Filter, Op, OrderField, OrderKey, PageRequest, Scalar,
};
use buildsets_graphql::store::{
    self, read, write, NewBuildset, NewPatch, NewProperty, SchemaMode, SourceStampRef,
    SourceStampSpec, StoreError,
};
use common::{count, counts, schema_snapshot, TestDb};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::json;

on_every_backend! {
    add_and_get_round_trip => add_and_get_round_trip;
    sourcestamps_dedupe_and_patches => sourcestamps_dedupe_and_patches;
    add_rejects_bad_input => add_rejects_bad_input;
    failed_add_leaves_nothing => failed_add_leaves_nothing;
    complete_and_its_errors => complete_and_its_errors;
    ensure_builder_finds_or_creates => ensure_builder_finds_or_creates;
    properties_skip_unreadable_rows => properties_skip_unreadable_rows;
    filters_and_order => filters_and_order;
    keyset_paging_both_ways => keyset_paging_both_ways;
    recent_buildsets => recent_buildsets;
    concurrent_adds_share_one_stamp => concurrent_adds_share_one_stamp;
    concurrent_completions => concurrent_completions;
    no_builders_is_complete_at_once => no_builders_is_complete_at_once;
    cancel_completes_requests_then_the_buildset => cancel_completes_requests_then_the_buildset;
    concurrent_ensure_builder => concurrent_ensure_builder;
    migrations_run_twice_are_a_no_op => migrations_run_twice_are_a_no_op;
    attached_mode_runs_no_ddl => attached_mode_runs_no_ddl;
    attached_mode_names_missing_columns => attached_mode_names_missing_columns;
    non_transactional_tables_are_found => non_transactional_tables_are_found;
}

fn stamp(branch: &str) -> SourceStampRef {
    SourceStampRef::Spec(SourceStampSpec {
        branch: Some(branch.into()),
        revision: Some("rev".into()),
        repository: "https://example.org/repo.git".into(),
        codebase: "cb".into(),
        project: "proj".into(),
        patch: None,
    })
}

fn buildset(stamps: Vec<SourceStampRef>, builderids: Vec<i32>) -> NewBuildset {
    NewBuildset {
        sourcestamps: stamps,
        reason: Some("because".into()),
        builderids,
        ..Default::default()
    }
}

async fn builder(t: &TestDb, name: &str) -> i32 {
    write::ensure_builder(&t.db, name, None)
        .await
        .expect("builder")
        .builderid
}

async fn add(t: &TestDb, input: &NewBuildset) -> i32 {
    write::add_buildset(&t.db, t.mode, input)
        .await
        .expect("add")
        .bsid
}

async fn add_and_get_round_trip(t: TestDb) {
    let b1 = builder(&t, "b1").await;
    let b2 = builder(&t, "b2").await;
    let input = NewBuildset {
        sourcestamps: vec![
            stamp("main"),
            SourceStampRef::Spec(SourceStampSpec::default()),
        ],
        reason: Some("a reason".into()),
        properties: vec![
            NewProperty {
                name: "int".into(),
                value: json!(1),
                source: "S".into(),
            },
            NewProperty {
                name: "float".into(),
                value: json!(1.0),
                source: "S".into(),
            },
            NewProperty {
                name: "str".into(),
                value: json!("1"),
                source: "T".into(),
            },
            NewProperty {
                name: "obj".into(),
                value: json!({"z": [true, null], "a": "ü"}),
                source: "U".into(),
            },
        ],
        builderids: vec![b2, b1],
        external_idstring: Some("ext-1".into()),
        submitted_at: Some(1_700_000_000),
        parent_buildid: Some(41),
        parent_relationship: Some("child".into()),
        rebuilt_buildid: Some(42),
        waited_for: true,
        priority: 5,
        scheduler: Some("nightly".into()),
        idempotency_key: None,
    };
    let added = write::add_buildset(&t.db, t.mode, &input)
        .await
        .expect("add");
    assert_eq!(
        added.brids.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
        vec![b2, b1]
    );

    let bs = read::get_buildset(&t.db, added.bsid)
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(bs.reason.as_deref(), Some("a reason"));
    assert_eq!(bs.external_idstring.as_deref(), Some("ext-1"));
    assert_eq!(bs.submitted_at.timestamp(), 1_700_000_000);
    assert_eq!(
        (bs.complete, bs.complete_at, bs.results),
        (false, None, None)
    );
    // Decoded from what Buildbot stores: complete 0 and results -1.
    let raw = entity::buildsets::Entity::find_by_id(added.bsid)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((raw.complete, raw.results), (0, Some(-1)));
    assert_eq!(
        (bs.parent_buildid, bs.rebuilt_buildid),
        (Some(41), Some(42))
    );
    assert_eq!(bs.parent_relationship.as_deref(), Some("child"));
    assert!(read::get_buildset(&t.db, added.bsid + 100)
        .await
        .unwrap()
        .is_none());

    let props = read::get_buildset_properties(&t.db, added.bsid)
        .await
        .unwrap();
    let names: Vec<_> = props.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["float", "int", "obj", "scheduler", "str"]);
    // As Buildbot's schedulers store it.
    assert_eq!(
        (&props[3].value, props[3].source.as_str()),
        (&json!("nightly"), "Scheduler")
    );
    let props: Vec<_> = props
        .into_iter()
        .filter(|p| p.name != "scheduler")
        .collect();
    assert_eq!(props[0].value.to_string(), "1.0");
    assert_eq!(props[1].value.to_string(), "1");
    assert_eq!(props[3].value, json!("1"));
    assert_eq!(props[2].value, json!({"z": [true, null], "a": "ü"}));
    assert_eq!(props[2].source, "U");
    assert!(read::get_buildset_properties(&t.db, 999_999)
        .await
        .unwrap()
        .is_empty());

    let stamps = read::sourcestamps_of_buildsets(&t.db, &[added.bsid])
        .await
        .unwrap();
    assert_eq!(stamps.len(), 2);
    assert_eq!(stamps[0].1.branch.as_deref(), Some("main"));
    assert_eq!(stamps[1].1.branch, None);
    // The empty description hashes to Buildbot's vector.
    let raw = entity::sourcestamps::Entity::find_by_id(stamps[1].1.ssid)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.ss_hash, "835fccf6db3694afb48c380997024542c0bc162d");

    let brs = read::buildrequests_of_buildsets(&t.db, &[added.bsid])
        .await
        .unwrap();
    assert_eq!(brs.len(), 2);
    for (br, (builderid, brid)) in brs.iter().zip(&added.brids) {
        assert_eq!((br.buildrequestid, br.builderid), (*brid, *builderid));
        assert_eq!(br.priority, 5);
        assert!(br.waited_for);
        assert_eq!((br.complete, br.results), (false, None));
        assert_eq!(br.submitted_at.timestamp(), 1_700_000_000);
        let raw = entity::buildrequests::Entity::find_by_id(br.buildrequestid)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (raw.waited_for, raw.complete, raw.results),
            (Some(1), Some(0), Some(-1))
        );
    }
    let builders = read::builders_by_ids(&t.db, &[b1]).await.unwrap();
    assert_eq!(builders[0].name, "b1");
    let raw = entity::builders::Entity::find_by_id(b1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.name_hash, store::hash::builder_name_hash("b1"));
}

async fn sourcestamps_dedupe_and_patches(t: TestDb) {
    let a = add(&t, &buildset(vec![stamp("x"), stamp("y")], vec![])).await;
    let b = add(&t, &buildset(vec![stamp("y"), stamp("x")], vec![])).await;
    let sa: Vec<i32> = read::sourcestamps_of_buildsets(&t.db, &[a])
        .await
        .unwrap()
        .iter()
        .map(|s| s.1.ssid)
        .collect();
    let sb: Vec<i32> = read::sourcestamps_of_buildsets(&t.db, &[b])
        .await
        .unwrap()
        .iter()
        .map(|s| s.1.ssid)
        .collect();
    assert_eq!(
        sa,
        vec![sb[1], sb[0]],
        "same descriptions, same stamps, order kept"
    );
    assert_eq!(count(&t.db, "sourcestamps").await, 2);

    // By id.
    let c = add(&t, &buildset(vec![SourceStampRef::Id(sa[1])], vec![])).await;
    let sc = read::sourcestamps_of_buildsets(&t.db, &[c]).await.unwrap();
    assert_eq!(sc[0].1.ssid, sa[1]);

    // A patch makes a new stamp every time.
    let patched = || {
        SourceStampRef::Spec(SourceStampSpec {
            patch: Some(NewPatch {
                body: b"--- a\n+++ b\n\xff".to_vec(),
                level: 2,
                author: "me".into(),
                comment: "fix".into(),
                subdir: Some("sub".into()),
            }),
            ..Default::default()
        })
    };
    let d = add(&t, &buildset(vec![patched()], vec![])).await;
    let e = add(&t, &buildset(vec![patched()], vec![])).await;
    let sd = read::sourcestamps_of_buildsets(&t.db, &[d, e])
        .await
        .unwrap();
    assert_eq!(sd.len(), 2);
    assert_ne!(sd[0].1.ssid, sd[1].1.ssid);
    let patch_ids: Vec<i32> = sd.iter().filter_map(|s| s.1.patchid).collect();
    let patches = read::patches_by_ids(&t.db, &patch_ids).await.unwrap();
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[0].body.as_deref(), Some(&b"--- a\n+++ b\n\xff"[..]));
    assert_eq!(
        (patches[0].level, patches[0].subdir.as_deref()),
        (2, Some("sub"))
    );
    let raw = entity::patches::Entity::find_by_id(patches[0].patchid)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.patch_base64, "LS0tIGEKKysrIGIK/w==");
    let raw = entity::sourcestamps::Entity::find_by_id(sd[0].1.ssid)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        raw.ss_hash,
        store::hash::sourcestamp_hash(None, None, "", "", "", sd[0].1.patchid)
    );
}

fn field_of(err: StoreError) -> String {
    match err {
        StoreError::InvalidInput { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

async fn add_rejects_bad_input(t: TestDb) {
    let b = builder(&t, "b").await;
    let before = counts(&t.db).await;
    let long = |n: usize| "é".repeat(n);
    let ok = buildset(vec![stamp("main")], vec![b]);
    let cases: Vec<(&str, NewBuildset)> = vec![
        ("sourcestamps", buildset(vec![], vec![b])),
        (
            "sourcestamps",
            buildset(vec![SourceStampRef::Id(987_654)], vec![b]),
        ),
        (
            "sourcestamps",
            buildset(vec![stamp("same"), stamp("same")], vec![b]),
        ),
        ("builderids", buildset(vec![stamp("main")], vec![987_654])),
        ("builderids", buildset(vec![stamp("main")], vec![b, b])),
        (
            "reason",
            NewBuildset {
                reason: Some(long(257)),
                ..ok.clone()
            },
        ),
        // PostgreSQL cannot store a NUL in text; every backend refuses it alike.
        (
            "reason",
            NewBuildset {
                reason: Some("a\0b".into()),
                ..ok.clone()
            },
        ),
        (
            "branch",
            buildset(
                vec![SourceStampRef::Spec(SourceStampSpec {
                    branch: Some("\0".into()),
                    ..Default::default()
                })],
                vec![b],
            ),
        ),
        (
            "external_idstring",
            NewBuildset {
                external_idstring: Some(long(257)),
                ..ok.clone()
            },
        ),
        (
            "properties.name",
            NewBuildset {
                properties: vec![NewProperty {
                    name: long(257),
                    value: json!(1),
                    source: "s".into(),
                }],
                ..ok.clone()
            },
        ),
        (
            "properties",
            NewBuildset {
                properties: vec![
                    NewProperty {
                        name: "p".into(),
                        value: json!(1),
                        source: "s".into()
                    };
                    2
                ],
                ..ok.clone()
            },
        ),
        ("branch", buildset(vec![stamp(&long(257))], vec![b])),
        (
            "repository",
            buildset(
                vec![SourceStampRef::Spec(SourceStampSpec {
                    repository: long(513),
                    ..Default::default()
                })],
                vec![b],
            ),
        ),
        (
            "project",
            buildset(
                vec![SourceStampRef::Spec(SourceStampSpec {
                    project: long(513),
                    ..Default::default()
                })],
                vec![b],
            ),
        ),
        (
            "codebase",
            buildset(
                vec![SourceStampRef::Spec(SourceStampSpec {
                    codebase: long(257),
                    ..Default::default()
                })],
                vec![b],
            ),
        ),
        (
            "revision",
            buildset(
                vec![SourceStampRef::Spec(SourceStampSpec {
                    revision: Some(long(257)),
                    ..Default::default()
                })],
                vec![b],
            ),
        ),
    ];
    for (field, input) in cases {
        let err = write::add_buildset(&t.db, t.mode, &input)
            .await
            .expect_err(field);
        assert_eq!(field_of(err), field);
    }
    assert_eq!(
        counts(&t.db).await,
        before,
        "nothing written by rejected adds"
    );
    // Limits count characters, not bytes: exactly 256 two-byte characters fit.
    let fits = NewBuildset {
        reason: Some(long(256)),
        ..ok.clone()
    };
    let bsid = add(&t, &fits).await;
    let bs = read::get_buildset(&t.db, bsid).await.unwrap().unwrap();
    assert_eq!(bs.reason.unwrap().chars().count(), 256);
    // An empty builder list is allowed.
    add(&t, &buildset(vec![stamp("main")], vec![])).await;
}

async fn failed_add_leaves_nothing(t: TestDb) {
    let b = builder(&t, "b").await;
    add(&t, &buildset(vec![stamp("main")], vec![b])).await;
    let before = counts(&t.db).await;
    let input = NewBuildset {
        sourcestamps: vec![SourceStampRef::Spec(SourceStampSpec {
            branch: Some("brand-new".into()),
            patch: Some(NewPatch {
                body: b"x".to_vec(),
                level: 1,
                author: String::new(),
                comment: String::new(),
                subdir: None,
            }),
            ..Default::default()
        })],
        properties: vec![NewProperty {
            name: "p".into(),
            value: json!([1]),
            source: "s".into(),
        }],
        builderids: vec![b, 424_242],
        ..Default::default()
    };
    let err = write::add_buildset(&t.db, t.mode, &input)
        .await
        .expect_err("unknown builder");
    assert_eq!(field_of(err), "builderids");
    assert_eq!(
        counts(&t.db).await,
        before,
        "the new patch and stamp were rolled back"
    );
}

async fn complete_and_its_errors(t: TestDb) {
    let b = write::ensure_builder(&t.db, "b", None)
        .await
        .unwrap()
        .builderid;
    let bsid = add(&t, &buildset(vec![stamp("m")], vec![b])).await;
    let err = store::complete::complete_buildset(&t.db, t.mode, bsid, 7, None)
        .await
        .expect_err("bad code");
    assert_eq!(field_of(err), "results");
    let err = store::complete::complete_buildset(&t.db, t.mode, bsid, -1, None)
        .await
        .expect_err("bad code");
    assert_eq!(field_of(err), "results");
    let done = store::complete::complete_buildset(&t.db, t.mode, bsid, 2, Some(1_700_000_500))
        .await
        .expect("complete");
    assert_eq!(
        (
            done.complete,
            done.results,
            done.complete_at.map(|t| t.timestamp())
        ),
        (true, Some(2), Some(1_700_000_500))
    );
    assert!(matches!(
        store::complete::complete_buildset(&t.db, t.mode, bsid, 0, None).await,
        Err(StoreError::AlreadyComplete(id)) if id == bsid
    ));
    assert!(matches!(
        store::complete::complete_buildset(&t.db, t.mode, bsid + 1000, 0, None).await,
        Err(StoreError::NotFound(_))
    ));
    let other = add(&t, &buildset(vec![stamp("m")], vec![b])).await;
    let now = store::now();
    let done = store::complete::complete_buildset(&t.db, t.mode, other, 0, None)
        .await
        .unwrap();
    assert!(done.complete_at.unwrap().timestamp() >= i64::from(now));
}

async fn ensure_builder_finds_or_creates(t: TestDb) {
    let a = write::ensure_builder(&t.db, "bldr1", None).await.unwrap();
    let raw = entity::builders::Entity::find_by_id(a.builderid)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.name_hash, "88103b2fbeb05bdd81c066b58a11bcf9b0d29300");
    let again = write::ensure_builder(&t.db, "bldr1", Some("described"))
        .await
        .unwrap();
    assert_eq!(again.builderid, a.builderid);
    assert_eq!(again.description.as_deref(), Some("described"));
    let other = write::ensure_builder(&t.db, "bldr2", None).await.unwrap();
    assert_ne!(other.builderid, a.builderid);
    assert_eq!(count(&t.db, "builders").await, 2);
    let err = write::ensure_builder(&t.db, "", None)
        .await
        .expect_err("empty name");
    assert_eq!(field_of(err), "name");
    let all = read::all_builders(&t.db).await.unwrap();
    assert_eq!(
        all.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["bldr1", "bldr2"]
    );
}

async fn properties_skip_unreadable_rows(t: TestDb) {
    let bsid = add(
        &t,
        &NewBuildset {
            properties: vec![NewProperty {
                name: "good".into(),
                value: json!({"k": 1}),
                source: "s".into(),
            }],
            ..buildset(vec![stamp("m")], vec![])
        },
    )
    .await;
    let backend = t.db.get_database_backend();
    for (name, value) in [("bad", "{not json"), ("short", "[1]")] {
        let sql = format!("INSERT INTO buildset_properties (buildsetid, property_name, property_value) VALUES ({bsid}, '{name}', '{value}')");
        t.db.execute_raw(Statement::from_string(backend, sql))
            .await
            .unwrap();
    }
    let props = read::get_buildset_properties(&t.db, bsid).await.unwrap();
    assert_eq!(props.len(), 1);
    assert_eq!(
        (props[0].name.as_str(), &props[0].value),
        ("good", &json!({"k": 1}))
    );
    // Stored the way Python's json.dumps writes it.
    let row = t.db.query_one_raw(Statement::from_string(backend, format!(
        "SELECT property_value FROM buildset_properties WHERE buildsetid = {bsid} AND property_name = 'good'"
    ))).await.unwrap().unwrap();
    assert_eq!(
        row.try_get_by_index::<String>(0).unwrap(),
        r#"[{"k": 1}, "s"]"#
    );
}

/// Six buildsets with distinct columns, for the filter and order tests.
async fn fixture(t: &TestDb) -> Vec<i32> {
    let b1 = builder(t, "f1").await;
    let b2 = builder(t, "f2").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let input = NewBuildset {
            sourcestamps: vec![SourceStampRef::Spec(SourceStampSpec {
                branch: if i == 5 {
                    None
                } else {
                    Some(format!("br{}", i % 2))
                },
                repository: format!("repo{}", i % 3),
                ..Default::default()
            })],
            reason: if i == 4 {
                None
            } else {
                Some(format!("reason_{i}%"))
            },
            external_idstring: Some(format!("ext{i}")),
            builderids: if i % 2 == 0 { vec![b1] } else { vec![b1, b2] },
            submitted_at: Some(1000 + (i / 2) * 10),
            parent_buildid: (i == 3).then_some(77),
            ..Default::default()
        };
        ids.push(add(t, &input).await);
    }
    store::complete::complete_buildset(&t.db, t.mode, ids[0], 2, Some(5000))
        .await
        .unwrap();
    store::complete::complete_buildset(&t.db, t.mode, ids[1], 0, Some(4000))
        .await
        .unwrap();
    store::complete::complete_buildset(&t.db, t.mode, ids[2], 2, Some(4000))
        .await
        .unwrap();
    ids
}

async fn page_ids(t: &TestDb, req: PageRequest) -> Vec<i32> {
    query::get_buildsets(&t.db, &req)
        .await
        .unwrap()
        .rows
        .iter()
        .map(|r| r.0.bsid)
        .collect()
}

async fn filtered(t: &TestDb, filter: Filter) -> Vec<i32> {
    page_ids(
        t,
        PageRequest {
            filter: Some(filter),
            ..Default::default()
        },
    )
    .await
}

async fn filters_and_order(t: TestDb) {
    let ids = fixture(&t).await;
    let pick = |idx: &[usize]| idx.iter().map(|&i| ids[i]).collect::<Vec<_>>();
    let p = |f: Field, op: Op| Filter::Pred(f, op);
    let int = Scalar::Int;
    let s = |v: &str| Scalar::Str(v.into());

    assert_eq!(
        page_ids(&t, PageRequest::default()).await,
        pick(&[0, 1, 2, 3, 4, 5])
    );
    assert_eq!(
        page_ids(
            &t,
            PageRequest {
                complete: Some(true),
                ..Default::default()
            }
        )
        .await,
        pick(&[0, 1, 2])
    );
    assert_eq!(
        page_ids(
            &t,
            PageRequest {
                complete: Some(false),
                ..Default::default()
            }
        )
        .await,
        pick(&[3, 4, 5])
    );

    assert_eq!(
        filtered(&t, p(Field::Bsid, Op::Eq(int(ids[2].into())))).await,
        pick(&[2])
    );
    assert_eq!(
        filtered(
            &t,
            p(
                Field::Bsid,
                Op::In(vec![int(ids[1].into()), int(ids[4].into())])
            )
        )
        .await,
        pick(&[1, 4])
    );
    assert_eq!(
        filtered(&t, p(Field::Bsid, Op::In(vec![]))).await,
        pick(&[])
    );
    assert_eq!(
        filtered(&t, p(Field::SubmittedAt, Op::Ge(int(1010)))).await,
        pick(&[2, 3, 4, 5])
    );
    assert_eq!(
        filtered(&t, p(Field::SubmittedAt, Op::Lt(int(1010)))).await,
        pick(&[0, 1])
    );
    // Results are null while incomplete: comparisons never match those.
    assert_eq!(
        filtered(&t, p(Field::Results, Op::Eq(int(2)))).await,
        pick(&[0, 2])
    );
    assert_eq!(
        filtered(&t, p(Field::Results, Op::Ne(int(2)))).await,
        pick(&[1])
    );
    assert_eq!(
        filtered(&t, p(Field::Results, Op::Le(int(0)))).await,
        pick(&[1])
    );
    assert_eq!(
        filtered(&t, p(Field::Results, Op::IsNull(true))).await,
        pick(&[3, 4, 5])
    );
    assert_eq!(
        filtered(&t, p(Field::CompleteAt, Op::Gt(int(4000)))).await,
        pick(&[0])
    );
    assert_eq!(
        filtered(&t, p(Field::CompleteAt, Op::IsNull(false))).await,
        pick(&[0, 1, 2])
    );
    // ne and notIn do not match nulls.
    assert_eq!(
        filtered(&t, p(Field::Reason, Op::Ne(s("reason_0%")))).await,
        pick(&[1, 2, 3, 5])
    );
    assert_eq!(
        filtered(
            &t,
            p(
                Field::Reason,
                Op::NotIn(vec![s("reason_0%"), s("reason_1%")])
            )
        )
        .await,
        pick(&[2, 3, 5])
    );
    assert_eq!(
        filtered(&t, p(Field::Reason, Op::IsNull(true))).await,
        pick(&[4])
    );
    // LIKE wildcards in the needle are literal.
    assert_eq!(
        filtered(&t, p(Field::Reason, Op::Contains("_3%".into()))).await,
        pick(&[3])
    );
    assert_eq!(
        filtered(&t, p(Field::Reason, Op::Contains("n_".into()))).await,
        pick(&[0, 1, 2, 3, 5])
    );
    assert_eq!(
        filtered(&t, p(Field::Reason, Op::StartsWith("reason_5".into()))).await,
        pick(&[5])
    );
    assert_eq!(
        filtered(&t, p(Field::Reason, Op::StartsWith("%".into()))).await,
        pick(&[])
    );
    assert_eq!(
        filtered(&t, p(Field::ExternalIdstring, Op::Eq(s("ext3")))).await,
        pick(&[3])
    );
    assert_eq!(
        filtered(&t, p(Field::ParentBuildid, Op::Eq(int(77)))).await,
        pick(&[3])
    );
    assert_eq!(
        filtered(&t, p(Field::RebuiltBuildid, Op::IsNull(true)))
            .await
            .len(),
        6
    );
    // To-many filters: any sourcestamp / build request matches, each buildset once.
    assert_eq!(
        filtered(&t, p(Field::Branch, Op::Eq(s("br1")))).await,
        pick(&[1, 3])
    );
    assert_eq!(
        filtered(&t, p(Field::Branch, Op::IsNull(true))).await,
        pick(&[5])
    );
    assert_eq!(
        filtered(
            &t,
            p(Field::Repository, Op::In(vec![s("repo0"), s("repo2")]))
        )
        .await,
        pick(&[0, 2, 3, 5])
    );
    assert_eq!(
        filtered(&t, p(Field::Project, Op::Eq(s("")))).await.len(),
        6
    );
    assert_eq!(
        filtered(&t, p(Field::Codebase, Op::Ne(s("")))).await,
        pick(&[])
    );
    let b2 = read::all_builders(&t.db).await.unwrap()[1].builderid;
    assert_eq!(
        filtered(&t, p(Field::Builderid, Op::Eq(int(b2.into())))).await,
        pick(&[1, 3, 5])
    );
    // Boolean structure.
    assert_eq!(
        filtered(
            &t,
            Filter::And(vec![
                p(Field::Branch, Op::Eq(s("br0"))),
                p(Field::SubmittedAt, Op::Gt(int(1000)))
            ])
        )
        .await,
        pick(&[2, 4])
    );
    assert_eq!(
        filtered(
            &t,
            Filter::Or(vec![
                p(Field::Bsid, Op::Eq(int(ids[0].into()))),
                p(Field::Reason, Op::IsNull(true))
            ])
        )
        .await,
        pick(&[0, 4])
    );
    assert_eq!(
        filtered(
            &t,
            Filter::Not(Box::new(p(Field::Builderid, Op::Eq(int(b2.into())))))
        )
        .await,
        pick(&[0, 2, 4])
    );
    assert_eq!(filtered(&t, Filter::Or(vec![])).await, pick(&[]));
    assert_eq!(
        query::count_buildsets(
            &t.db,
            Some(false),
            Some(&p(Field::Builderid, Op::Eq(int(b2.into()))))
        )
        .await
        .unwrap(),
        2
    );

    let order = |field, descending| vec![OrderKey { field, descending }];
    let ordered = |o| {
        page_ids(
            &t,
            PageRequest {
                order: o,
                ..Default::default()
            },
        )
    };
    assert_eq!(
        ordered(order(OrderField::Bsid, true)).await,
        pick(&[5, 4, 3, 2, 1, 0])
    );
    // Ties are broken by bsid ascending.
    assert_eq!(
        ordered(order(OrderField::SubmittedAt, true)).await,
        pick(&[4, 5, 2, 3, 0, 1])
    );
    // Nulls sort last ascending, first descending, on every backend.
    assert_eq!(
        ordered(order(OrderField::CompleteAt, false)).await,
        pick(&[1, 2, 0, 3, 4, 5])
    );
    assert_eq!(
        ordered(order(OrderField::CompleteAt, true)).await,
        pick(&[3, 4, 5, 0, 1, 2])
    );
    assert_eq!(
        ordered(order(OrderField::Results, false)).await,
        pick(&[1, 0, 2, 3, 4, 5])
    );
    assert_eq!(
        ordered(order(OrderField::Reason, true)).await,
        pick(&[4, 5, 3, 2, 1, 0])
    );
    assert_eq!(
        ordered(vec![
            OrderKey {
                field: OrderField::Results,
                descending: true
            },
            OrderKey {
                field: OrderField::Bsid,
                descending: true
            },
        ])
        .await,
        pick(&[5, 4, 3, 2, 0, 1])
    );
}

async fn keyset_paging_both_ways(t: TestDb) {
    let ids = fixture(&t).await;
    for order in [
        vec![],
        vec![OrderKey {
            field: OrderField::CompleteAt,
            descending: false,
        }],
        vec![OrderKey {
            field: OrderField::Results,
            descending: true,
        }],
        vec![OrderKey {
            field: OrderField::Reason,
            descending: false,
        }],
        vec![OrderKey {
            field: OrderField::SubmittedAt,
            descending: true,
        }],
    ] {
        let all = page_ids(
            &t,
            PageRequest {
                order: order.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(all.len(), ids.len());
        // Forwards, two at a time.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = query::get_buildsets(
                &t.db,
                &PageRequest {
                    order: order.clone(),
                    take_first: Some(2),
                    start_after: after.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(page.more_before, after.is_some());
            seen.extend(page.rows.iter().map(|r| r.0.bsid));
            after = page.rows.last().map(|r| r.1.clone());
            if !page.more_after {
                break;
            }
        }
        assert_eq!(seen, all, "forward pages of {order:?}");
        // Backwards from the end.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = query::get_buildsets(
                &t.db,
                &PageRequest {
                    order: order.clone(),
                    take_last: Some(4),
                    end_before: before.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            let mut chunk: Vec<i32> = page.rows.iter().map(|r| r.0.bsid).collect();
            chunk.extend(seen);
            seen = chunk;
            before = page.rows.first().map(|r| r.1.clone());
            if !page.more_before {
                break;
            }
        }
        assert_eq!(seen, all, "backward pages of {order:?}");
    }
    // A page position survives rows added after it was taken.
    let first = query::get_buildsets(
        &t.db,
        &PageRequest {
            take_first: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let cursor = first.rows.last().unwrap().1.clone();
    let new = add(&t, &buildset(vec![stamp("late")], vec![])).await;
    let rest = page_ids(
        &t,
        PageRequest {
            start_after: Some(cursor.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rest, vec![ids[3], ids[4], ids[5], new]);
    // Key values that do not fit the ordering are refused, not sent to SQL. (Cursor
    // text is the GraphQL layer's; tests/api.rs checks its refusals.)
    let err = query::get_buildsets(
        &t.db,
        &PageRequest {
            start_after: Some(cursor),
            order: vec![OrderKey {
                field: OrderField::Reason,
                descending: false,
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(field_of(err), "start_after");
    let err = query::get_buildsets(
        &t.db,
        &PageRequest {
            end_before: Some(vec![Some(query::Scalar::Str("x".into()))]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(field_of(err), "end_before");
}

async fn recent_buildsets(t: TestDb) {
    let ids = fixture(&t).await;
    let pick = |idx: &[usize]| idx.iter().map(|&i| ids[i]).collect::<Vec<_>>();
    let recent = |count, branch: Option<&'static str>, repo: Option<&'static str>, complete| {
        let db = &t.db;
        async move {
            query::get_recent_buildsets(db, count, branch, repo, complete)
                .await
                .unwrap()
                .iter()
                .map(|b| b.bsid)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(recent(3, None, None, None).await, pick(&[3, 4, 5]));
    assert_eq!(
        recent(100, None, None, None).await,
        pick(&[0, 1, 2, 3, 4, 5])
    );
    assert_eq!(recent(2, Some("br0"), None, None).await, pick(&[2, 4]));
    assert_eq!(recent(9, None, Some("repo1"), None).await, pick(&[1, 4]));
    assert_eq!(
        recent(9, Some("br1"), Some("repo1"), None).await,
        pick(&[1])
    );
    assert_eq!(recent(9, None, None, Some(true)).await, pick(&[0, 1, 2]));
    assert_eq!(recent(2, None, None, Some(false)).await, pick(&[4, 5]));
    assert_eq!(recent(0, None, None, None).await, pick(&[]));
}

async fn concurrent_adds_share_one_stamp(t: TestDb) {
    let b = builder(&t, "race").await;
    let input = buildset(vec![stamp("racing"), stamp("racing-too")], vec![b]);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (db, mode, input) = (t.db.clone(), t.mode, input.clone());
        tasks.push(tokio::spawn(async move {
            write::add_buildset(&db, mode, &input).await
        }));
    }
    let mut bsids = HashSet::new();
    for task in tasks {
        bsids.insert(task.await.unwrap().expect("every add succeeds").bsid);
    }
    assert_eq!(bsids.len(), 20);
    assert_eq!(count(&t.db, "sourcestamps").await, 2);
    assert_eq!(count(&t.db, "buildset_sourcestamps").await, 40);
    assert_eq!(count(&t.db, "buildrequests").await, 20);
}

async fn concurrent_completions(t: TestDb) {
    let b = write::ensure_builder(&t.db, "b", None)
        .await
        .unwrap()
        .builderid;
    let bsid = add(&t, &buildset(vec![stamp("m")], vec![b])).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            store::complete::complete_buildset(&db, SchemaMode::Standalone, bsid, i % 7, None).await
        }));
    }
    let (mut ok, mut already) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::AlreadyComplete(_)) => already += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, already), (1, 19));
}

async fn concurrent_ensure_builder(t: TestDb) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            write::ensure_builder(&db, "shared-name", None).await
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().expect("ensure succeeds").builderid);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(count(&t.db, "builders").await, 1);
}

async fn migrations_run_twice_are_a_no_op(t: TestDb) {
    let before = schema_snapshot(&t.db).await;
    assert!(before
        .iter()
        .any(|l| l.contains("sourcestamps_ss_hash_key")));
    assert_eq!(
        store::prepare_schema(&t.db).await.unwrap(),
        SchemaMode::Standalone
    );
    assert_eq!(schema_snapshot(&t.db).await, before);
}

/// A database laid out as Buildbot lays it out: its tables and an `alembic_version`.
async fn buildbot_like(
    backend: common::Backend,
    test: &str,
    skip: Option<&str>,
) -> Option<(sea_orm::DatabaseConnection, Option<common::TempDir>)> {
    let (url, dir) = common::empty_database(backend, test).await?;
    // The DDL goes through one connection, closed before the pool that uses the tables
    // opens (a pooled SQLite connection would keep the schema it loaded first).
    let db = store::connect_with(&url, |o| {
        o.max_connections(1);
    })
    .await
    .unwrap();
    let b = db.get_database_backend();
    db.execute_unprepared("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        .await
        .unwrap();
    db.execute_unprepared("INSERT INTO alembic_version VALUES ('067')")
        .await
        .unwrap();
    db.execute_unprepared("CREATE TABLE builds (id INTEGER NOT NULL PRIMARY KEY)")
        .await
        .unwrap();
    db.execute_unprepared("INSERT INTO builds VALUES (5)")
        .await
        .unwrap();
    for sql in migration::create_statements(b) {
        let sql = match skip {
            Some(col) => sql.replace(&format!("\n\t{col} VARCHAR(256),"), "\n"),
            None => sql,
        };
        db.execute_unprepared(&sql).await.unwrap();
    }
    db.close().await.unwrap();
    Some((store::connect(&url).await.unwrap(), dir))
}

async fn attached_mode_runs_no_ddl(t: TestDb) {
    let Some((db, _dir)) = buildbot_like(t.backend, &format!("att_{:?}", t.backend), None).await
    else {
        return;
    };
    let before = schema_snapshot(&db).await;
    assert_eq!(
        store::prepare_schema(&db).await.unwrap(),
        SchemaMode::Attached
    );
    // Writes still work there, and parent build ids are checked against `builds`.
    let b = write::ensure_builder(&db, "b", None)
        .await
        .unwrap()
        .builderid;
    let mut input = buildset(vec![stamp("m")], vec![b]);
    input.parent_buildid = Some(5);
    write::add_buildset(&db, SchemaMode::Attached, &input)
        .await
        .unwrap();
    input.rebuilt_buildid = Some(6);
    let err = write::add_buildset(&db, SchemaMode::Attached, &input)
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "rebuilt_buildid");
    assert_eq!(
        schema_snapshot(&db).await,
        before,
        "no DDL on a Buildbot database"
    );
    assert!(!schema_snapshot(&db)
        .await
        .iter()
        .any(|l| l.contains("seaql_migrations")));
}

async fn attached_mode_names_missing_columns(t: TestDb) {
    let Some((db, _dir)) = buildbot_like(
        t.backend,
        &format!("attm_{:?}", t.backend),
        Some("external_idstring"),
    )
    .await
    else {
        return;
    };
    let err = store::prepare_schema(&db).await.unwrap_err().to_string();
    assert!(err.contains("buildsets.external_idstring"), "{err}");
}

async fn non_transactional_tables_are_found(t: TestDb) {
    use buildsets_graphql::store::db::non_transactional_tables;
    assert!(
        non_transactional_tables(&t.db).await.unwrap().is_empty(),
        "our own tables are transactional"
    );
    if t.backend == common::Backend::MySql {
        // As Buildbot lays it out by default on MySQL (MyISAM, which has no foreign keys).
        t.db.execute_unprepared("DROP TABLE buildset_properties")
            .await
            .unwrap();
        t.db.execute_unprepared(
            "CREATE TABLE buildset_properties (buildsetid INTEGER NOT NULL, \
             property_name VARCHAR(256) NOT NULL, property_value TEXT NOT NULL) ENGINE=MyISAM",
        )
        .await
        .unwrap();
        assert_eq!(
            non_transactional_tables(&t.db).await.unwrap(),
            vec!["buildset_properties".to_owned()]
        );
    }
}

async fn no_builders_is_complete_at_once(t: TestDb) {
    let before = store::now();
    let bsid = add(&t, &buildset(vec![stamp("m")], vec![])).await;
    let row = read::get_buildset(&t.db, bsid).await.unwrap().unwrap();
    assert!(row.complete);
    assert_eq!(row.results, Some(0));
    assert!(row.complete_at.unwrap().timestamp() >= i64::from(before));
    assert!(matches!(
        store::complete::complete_buildset(&t.db, t.mode, bsid, 2, None).await,
        Err(StoreError::AlreadyComplete(id)) if id == bsid
    ));
}

async fn cancel_completes_requests_then_the_buildset(t: TestDb) {
    use store::cancel::CancelTarget;
    let (a, b) = (builder(&t, "a").await, builder(&t, "b").await);
    let bsid = add(&t, &buildset(vec![stamp("m")], vec![a, b])).await;
    let brids: Vec<i32> = read::buildrequests_of_buildsets(&t.db, &[bsid])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.buildrequestid)
        .collect();
    assert_eq!(brids.len(), 2);
    // One request: it is CANCELLED, the buildset still waits for the other.
    let got = store::cancel::cancel(
        &t.db,
        t.mode,
        CancelTarget::BuildRequest(brids[0]),
        None,
        &store::tag::Operation::unbounded(),
    )
    .await;
    assert_eq!(got.unwrap(), bsid);
    let mut reqs = read::buildrequests_by_ids(&t.db, &brids).await.unwrap();
    reqs.sort_by_key(|r| r.buildrequestid);
    assert_eq!(
        reqs.iter()
            .map(|r| (r.complete, r.results))
            .collect::<Vec<_>>(),
        vec![(true, Some(6)), (false, None)]
    );
    assert!(
        !read::get_buildset(&t.db, bsid)
            .await
            .unwrap()
            .unwrap()
            .complete
    );
    assert!(matches!(
        store::cancel::cancel(&t.db, t.mode, CancelTarget::BuildRequest(brids[0]), None, &store::tag::Operation::unbounded()).await,
        Err(StoreError::RequestComplete(id)) if id == brids[0]
    ));
    // The other finishes with FAILURE; then cancelling the buildset completes it
    // with the worst result, CANCELLED.
    let c = t.db.get_database_backend();
    t.db.execute_raw(Statement::from_string(
        c,
        format!(
            "UPDATE buildrequests SET complete = 1, results = 2 WHERE id = {}",
            brids[1]
        ),
    ))
    .await
    .unwrap();
    assert_eq!(
        store::cancel::cancel(
            &t.db,
            t.mode,
            CancelTarget::Buildset(bsid),
            None,
            &store::tag::Operation::unbounded()
        )
        .await
        .unwrap(),
        bsid
    );
    let row = read::get_buildset(&t.db, bsid).await.unwrap().unwrap();
    assert_eq!((row.complete, row.results), (true, Some(6)));
    assert!(matches!(
        store::cancel::cancel(&t.db, t.mode, CancelTarget::Buildset(bsid), None, &store::tag::Operation::unbounded()).await,
        Err(StoreError::AlreadyComplete(id)) if id == bsid
    ));
    assert!(matches!(
        store::cancel::cancel(
            &t.db,
            t.mode,
            CancelTarget::Buildset(bsid + 100),
            None,
            &store::tag::Operation::unbounded()
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store::cancel::cancel(
            &t.db,
            t.mode,
            CancelTarget::BuildRequest(brids[1] + 100),
            None,
            &store::tag::Operation::unbounded()
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
}
