//! addBuildset and completeBuildset in a constant, small number of round trips on
//! PostgreSQL and MariaDB (one statement each; two for an add with patches on
//! PostgreSQL), with the semantics of the transaction they replace: references
//! checked, nothing written for bad input, stamps shared by concurrent adds.

mod common;

use buildsets_graphql::store::tag::Operation;
use buildsets_graphql::store::{
    self, hash, read, write, NewBuildset, NewPatch, NewProperty, Relations, SourceStampRef,
    SourceStampSpec, Store, StoreError,
};
use common::{count, counts, Backend, TestDb};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

on_every_backend! {
    constant_round_trips => constant_round_trips;
    bad_references_write_nothing => bad_references_write_nothing;
    concurrent_adds_share_new_stamps => concurrent_adds_share_new_stamps;
    transaction_of_statements_still_serves => transaction_of_statements_still_serves;
    stamp_lookups_use_the_index => stamp_lookups_use_the_index;
}

fn spec(branch: &str) -> SourceStampSpec {
    SourceStampSpec {
        branch: Some(branch.into()),
        revision: Some("abc".into()),
        repository: "https://example.org/r.git".into(),
        codebase: "cb".into(),
        project: "p".into(),
        patch: None,
    }
}

fn patched(branch: &str) -> SourceStampSpec {
    SourceStampSpec {
        patch: Some(NewPatch {
            body: b"--- a\n+++ b\n".to_vec(),
            level: 1,
            author: "me".into(),
            comment: "fix".into(),
            subdir: Some("sub".into()),
        }),
        ..spec(branch)
    }
}

fn props(n: usize) -> Vec<NewProperty> {
    (0..n)
        .map(|i| NewProperty {
            name: format!("p{i}"),
            value: json!({"i": i, "s": "é"}),
            source: "test".into(),
        })
        .collect()
}

fn input(stamps: Vec<SourceStampRef>, builderids: Vec<i32>) -> NewBuildset {
    NewBuildset {
        sourcestamps: stamps,
        reason: Some("round trips".into()),
        builderids,
        properties: props(2),
        ..Default::default()
    }
}

async fn builders(t: &TestDb, n: usize) -> Vec<i32> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            write::ensure_builder(&t.db, &format!("b{i}"), None)
                .await
                .expect("builder")
                .builderid,
        );
    }
    out
}

/// Adds through the store as the mutation does; the statements it sent.
async fn add(
    store: &Store,
    input: &NewBuildset,
    relations: &Relations,
) -> (store::AddedBuildset, store::BuildsetView, u64) {
    let op = Operation::unbounded();
    let (added, view) = store
        .add_buildset(input, relations, &op)
        .await
        .expect("add");
    (added, view, op.statements())
}

/// What each operation may send: `None` on SQLite (in process, nothing to save).
fn expect(t: &TestDb, postgres: u64, mysql: u64) -> Option<u64> {
    match t.backend {
        Backend::Postgres => Some(postgres),
        Backend::MySql => Some(mysql),
        Backend::Sqlite => None,
    }
}

async fn constant_round_trips(t: TestDb) {
    let store = Store::new(t.db.clone(), t.mode);
    let b = builders(&t, 4).await;
    let plain = Relations::default();
    // Warm: first-use reads (MySQL's column charsets) are not the add's.
    add(
        &store,
        &input(vec![SourceStampRef::Spec(spec("warm"))], vec![b[0]]),
        &plain,
    )
    .await;

    let (new_stamp, view, n) = add(
        &store,
        &input(vec![SourceStampRef::Spec(spec("new"))], vec![b[0]]),
        &plain,
    )
    .await;
    eprintln!("{:?} add, new stamp: {n} statements", t.backend);
    if let Some(e) = expect(&t, 1, 1) {
        assert_eq!(n, e, "add with a new stamp");
    }
    assert_eq!(view.row.bsid, new_stamp.bsid);
    assert_eq!(view.row.reason.as_deref(), Some("round trips"));
    assert!(!view.row.complete);
    assert_eq!(view.row.results, None);
    assert_eq!(new_stamp.brids.len(), 1);

    let ssid = read::sourcestamps_of_buildsets(&t.db, &[new_stamp.bsid])
        .await
        .unwrap()[0]
        .1
        .ssid;
    let (_, _, n) = add(
        &store,
        &input(vec![SourceStampRef::Id(ssid)], vec![b[1]]),
        &plain,
    )
    .await;
    eprintln!("{:?} add, existing ssid: {n} statements", t.backend);
    if let Some(e) = expect(&t, 1, 1) {
        assert_eq!(n, e, "add with an existing ssid");
    }

    let (with_patch, _, n) = add(
        &store,
        &input(
            vec![SourceStampRef::Spec(patched("pätched-ü 😀"))],
            vec![b[0]],
        ),
        &plain,
    )
    .await;
    eprintln!("{:?} add, patch: {n} statements", t.backend);
    if let Some(e) = expect(&t, 2, 1) {
        assert_eq!(n, e, "add with a patch");
    }
    // The stamp's hash is Buildbot's, over the patch id the database gave.
    let stamp = read::sourcestamps_of_buildsets(&t.db, &[with_patch.bsid])
        .await
        .unwrap()
        .remove(0)
        .1;
    let patchid = stamp.patchid.expect("a patch");
    let stored: String =
        t.db.query_one_raw(Statement::from_string(
            t.db.get_database_backend(),
            format!("SELECT ss_hash FROM sourcestamps WHERE id = {}", stamp.ssid),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let s = patched("pätched-ü 😀");
    assert_eq!(
        stored,
        hash::sourcestamp_hash(
            s.branch.as_deref(),
            s.revision.as_deref(),
            &s.repository,
            &s.project,
            &s.codebase,
            Some(patchid)
        )
    );
    let patch = read::patches_by_ids(&t.db, &[patchid])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(patch.body.as_deref(), Some(&b"--- a\n+++ b\n"[..]));
    assert_eq!(patch.subdir.as_deref(), Some("sub"));

    // Many of everything: still one statement (two with patches on PostgreSQL).
    let big = NewBuildset {
        properties: props(12),
        ..input(
            vec![
                SourceStampRef::Spec(spec("z-last")),
                SourceStampRef::Id(ssid),
                SourceStampRef::Spec(patched("p1")),
                SourceStampRef::Spec(spec("a-first")),
                SourceStampRef::Spec(patched("p2")),
            ],
            vec![b[3], b[1], b[0], b[2]],
        )
    };
    let (added, _, n) = add(&store, &big, &plain).await;
    eprintln!(
        "{:?} add, 5 stamps (2 patched), 4 builders, 12 properties: {n} statements",
        t.backend
    );
    if let Some(e) = expect(&t, 2, 1) {
        assert_eq!(n, e, "a big add");
    }
    assert_eq!(
        added.brids.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
        vec![b[3], b[1], b[0], b[2]],
        "build requests in the order of the builders given"
    );
    let requests = read::buildrequests_of_buildsets(&t.db, &[added.bsid])
        .await
        .unwrap();
    for (builder, brid) in &added.brids {
        assert!(requests
            .iter()
            .any(|r| r.buildrequestid == *brid && r.builderid == *builder));
    }
    let stamps = read::sourcestamps_of_buildsets(&t.db, &[added.bsid])
        .await
        .unwrap();
    assert_eq!(
        stamps
            .iter()
            .map(|(_, s)| s.branch.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["z-last", "new", "p1", "a-first", "p2"],
        "stamps in the order given"
    );
    assert_eq!(stamps[1].1.ssid, ssid);
    let stored = read::get_buildset_properties(&t.db, added.bsid)
        .await
        .unwrap();
    assert_eq!(stored.len(), 12);
    assert!(stored
        .iter()
        .any(|p| p.name == "p3" && p.value == json!({"i": 3, "s": "é"})));

    // No builders: complete at once, in the same statement.
    let (none, view, n) = add(
        &store,
        &input(vec![SourceStampRef::Id(ssid)], vec![]),
        &plain,
    )
    .await;
    if let Some(e) = expect(&t, 1, 1) {
        assert_eq!(n, e, "an add with no builders");
    }
    assert!(none.brids.is_empty());
    assert_eq!((view.row.complete, view.row.results), (true, Some(0)));

    // The answer with nested relations: the same statement and the page loader's
    // reads in one transaction (BEGIN and COMMIT counted), whatever the size.
    let nested = Relations {
        stamps: true,
        props: true,
        requests: true,
        ..Default::default()
    };
    let (_, small_view, small) = add(
        &store,
        &input(vec![SourceStampRef::Spec(spec("nested-1"))], vec![b[0]]),
        &nested,
    )
    .await;
    let (_, big_view, large) = add(
        &store,
        &NewBuildset {
            properties: props(9),
            ..input(
                vec![
                    SourceStampRef::Spec(spec("nested-2")),
                    SourceStampRef::Id(ssid),
                ],
                b.clone(),
            )
        },
        &nested,
    )
    .await;
    eprintln!(
        "{:?} add answering stamps, properties, requests: {small} statements",
        t.backend
    );
    if t.backend != Backend::Sqlite {
        // (SQLite keeps the transaction of statements, one per patch.)
        assert_eq!(
            small, large,
            "nested answers cost the same whatever their size"
        );
    }
    assert_eq!(small_view.stamps.as_ref().map(Vec::len), Some(1));
    assert_eq!(big_view.stamps.as_ref().map(Vec::len), Some(2));
    assert_eq!(big_view.props.as_ref().map(Vec::len), Some(9));
    assert_eq!(big_view.requests.as_ref().map(Vec::len), Some(4));

    // Completing: one statement, and its refusals.
    let op = Operation::unbounded();
    let row = store
        .complete_buildset(new_stamp.bsid, 2, Some(1_700_000_000), &plain, &op)
        .await
        .expect("complete");
    eprintln!("{:?} complete: {} statements", t.backend, op.statements());
    if let Some(e) = expect(&t, 1, 1) {
        assert_eq!(op.statements(), e, "completeBuildset");
    }
    assert_eq!((row.row.complete, row.row.results), (true, Some(2)));
    assert_eq!(
        row.row.complete_at.map(|t| t.timestamp()),
        Some(1_700_000_000)
    );
    let op = Operation::unbounded();
    assert!(matches!(
        store.complete_buildset(new_stamp.bsid, 0, None, &plain, &op).await,
        Err(StoreError::AlreadyComplete(id)) if id == new_stamp.bsid
    ));
    assert!(matches!(
        store.complete_buildset(987_654, 0, None, &plain, &op).await,
        Err(StoreError::NotFound(_))
    ));
    let stored = read::get_buildset(&t.db, new_stamp.bsid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.results,
        Some(2),
        "the refused completion changed nothing"
    );
}

fn field_of(err: StoreError) -> (String, String) {
    match err {
        StoreError::InvalidInput { field, message } => (field, message),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

async fn bad_references_write_nothing(t: TestDb) {
    let store = Store::new(t.db.clone(), t.mode);
    let b = builders(&t, 1).await;
    let op = Operation::unbounded();
    let (first, _) = store
        .add_buildset(
            &input(vec![SourceStampRef::Spec(spec("there"))], vec![b[0]]),
            &Relations::default(),
            &op,
        )
        .await
        .unwrap();
    let ssid = read::sourcestamps_of_buildsets(&t.db, &[first.bsid])
        .await
        .unwrap()[0]
        .1
        .ssid;
    let before = counts(&t.db).await;
    let cases = [
        (
            input(
                vec![
                    SourceStampRef::Spec(patched("new")),
                    SourceStampRef::Spec(spec("new-too")),
                ],
                vec![b[0], 424_242],
            ),
            "builderids",
            "builder 424242 does not exist",
        ),
        (
            input(
                vec![
                    SourceStampRef::Spec(patched("new")),
                    SourceStampRef::Id(777_777),
                ],
                vec![b[0]],
            ),
            "sourcestamps",
            "sourcestamp 777777 does not exist",
        ),
        // The stamp first, as the transaction this replaces checked it first.
        (
            input(vec![SourceStampRef::Id(777_777)], vec![424_242]),
            "sourcestamps",
            "sourcestamp 777777 does not exist",
        ),
        (
            input(
                vec![SourceStampRef::Id(ssid), SourceStampRef::Id(ssid)],
                vec![b[0]],
            ),
            "sourcestamps",
            "",
        ),
        // An id and a description of the same stamp: the unique link refuses it.
        (
            input(
                vec![
                    SourceStampRef::Spec(patched("new")),
                    SourceStampRef::Id(ssid),
                    SourceStampRef::Spec(spec("there")),
                ],
                vec![b[0]],
            ),
            "sourcestamps",
            "",
        ),
    ];
    for (bad, field, message) in cases {
        let op = Operation::unbounded();
        let err = store
            .add_buildset(&bad, &Relations::default(), &op)
            .await
            .expect_err(field);
        let (got_field, got_message) = field_of(err);
        assert_eq!(got_field, field);
        if !message.is_empty() {
            assert_eq!(got_message, message);
        }
        assert_eq!(counts(&t.db).await, before, "nothing written for {field}");
    }
    if t.backend != Backend::Sqlite {
        // The rejected adds left no transaction open behind them.
        let op = Operation::unbounded();
        store
            .add_buildset(
                &input(vec![SourceStampRef::Id(ssid)], vec![b[0]]),
                &Relations::default(),
                &op,
            )
            .await
            .expect("an add after the refusals");
    }
}

async fn concurrent_adds_share_new_stamps(t: TestDb) {
    let store = Store::new(t.db.clone(), t.mode);
    let b = builders(&t, 2).await;
    let shared = input(
        vec![
            SourceStampRef::Spec(spec("race-b")),
            SourceStampRef::Spec(patched("own")),
            SourceStampRef::Spec(spec("race-a")),
        ],
        b.clone(),
    );
    // The same stamps in the other order too: locks taken in one order whatever
    // the order given.
    let reversed = NewBuildset {
        sourcestamps: shared.sourcestamps.iter().rev().cloned().collect(),
        ..shared.clone()
    };
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, input) = (
            store.clone(),
            if i % 2 == 0 {
                shared.clone()
            } else {
                reversed.clone()
            },
        );
        tasks.push(tokio::spawn(async move {
            let op = Operation::unbounded();
            store
                .add_buildset(&input, &Relations::default(), &op)
                .await
                .map(|(a, _)| a)
        }));
    }
    let mut bsids = std::collections::HashSet::new();
    for task in tasks {
        bsids.insert(task.await.unwrap().expect("every add succeeds").bsid);
    }
    assert_eq!(bsids.len(), 16);
    // Two shared stamps, and one per add for its own patch.
    assert_eq!(count(&t.db, "sourcestamps").await, 2 + 16);
    assert_eq!(count(&t.db, "patches").await, 16);
    assert_eq!(count(&t.db, "buildset_sourcestamps").await, 3 * 16);
    assert_eq!(count(&t.db, "buildrequests").await, 2 * 16);
}

/// Where the database cannot take the add as one statement (MySQL has no anonymous
/// blocks; an idempotency key), the transaction of statements still serves, alike.
async fn transaction_of_statements_still_serves(t: TestDb) {
    let b = builders(&t, 2).await;
    let op = Operation::unbounded();
    let new = input(
        vec![
            SourceStampRef::Spec(spec("tx")),
            SourceStampRef::Spec(patched("tx-patched")),
        ],
        b.clone(),
    );
    let (added, view) = write::add_buildset_loading(
        &t.db,
        t.mode,
        &new,
        Some(&Relations::default()),
        None,
        false,
        &op,
    )
    .await
    .expect("add");
    assert!(op.statements() > 2, "{}", op.statements());
    assert_eq!(view.expect("the row").row.bsid, added.bsid);
    assert_eq!(
        added.brids.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
        b,
        "requests in the order of the builders"
    );
    let stamps = read::sourcestamps_of_buildsets(&t.db, &[added.bsid])
        .await
        .unwrap();
    assert_eq!(stamps.len(), 2);
    // The single statement finds the stamp the transaction made.
    let store = Store::new(t.db.clone(), t.mode);
    let (again, _, _) = add(
        &store,
        &input(vec![SourceStampRef::Spec(spec("tx"))], vec![b[0]]),
        &Relations::default(),
    )
    .await;
    let found = read::sourcestamps_of_buildsets(&t.db, &[again.bsid])
        .await
        .unwrap();
    assert_eq!(found[0].1.ssid, stamps[0].1.ssid);
    let done =
        store::complete::complete_buildset_returning(&t.db, t.mode, added.bsid, 0, None, false)
            .await
            .expect("complete");
    // MySQL without its block: the transaction's turn (the caller's fallback).
    assert_eq!(done.is_none(), t.backend == Backend::MySql);
}

/// Rows MySQL/MariaDB read by scanning a table or an index, on this session so far.
async fn scanned(db: &impl ConnectionTrait) -> i64 {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_rnd_next', 'Handler_read_next')",
        ))
        .await
        .expect("status");
    rows.iter()
        .map(|row| {
            let v: String = row.try_get_by_index(1).expect("a value");
            v.parse::<i64>().expect("a number")
        })
        .sum()
}

/// On MariaDB a stamp is found by its hash through the unique index whatever the
/// column's character set. Buildbot's tables are `utf8` (3-byte) in a database
/// whose default is utf8mb4; the add's hash variables took the database's charset,
/// so the column was converted for the comparison and every lookup scanned the
/// table under shared locks: 23 ms of MariaDB CPU per add on 20,000 stamps, and
/// deadlocks past the retries under 8 writers (seen by bench's full run).
async fn stamp_lookups_use_the_index(t: TestDb) {
    if t.backend != Backend::MySql {
        // PostgreSQL finds stamps by ON CONFLICT on the index; SQLite has one charset.
        return;
    }
    t.db.execute_unprepared(
        "ALTER TABLE sourcestamps MODIFY ss_hash VARCHAR(40) CHARACTER SET utf8mb3 NOT NULL",
    )
    .await
    .expect("Buildbot's charset for ss_hash");
    // One connection, so that the session's counters are the add's.
    let one = store::connect_with(&t.url, |o| {
        o.max_connections(1).min_connections(1);
    })
    .await
    .expect("a one-connection pool");
    let store = Store::new(one.clone(), t.mode);
    let b = builders(&t, 1).await;
    let plain = Relations::default();
    for i in 0..300 {
        let stamps = vec![SourceStampRef::Spec(spec(&format!("fill{i}")))];
        add(&store, &input(stamps, vec![b[0]]), &plain).await;
    }
    let before = scanned(&one).await;
    let stamps = vec![
        SourceStampRef::Spec(spec("probe")),
        SourceStampRef::Spec(spec("fill7")),
    ];
    add(&store, &input(stamps, vec![b[0]]), &plain).await;
    let rows = scanned(&one).await - before;
    eprintln!("stamp lookups: {rows} rows scanned");
    assert!(
        rows < 100,
        "an add with a new and an existing stamp scanned {rows} rows among 300 stamps"
    );
}
