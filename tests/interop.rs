//! Interoperability with real Buildbot 4.3: its own connectors (driven by
//! `tests/interop/bb.py` in a virtualenv that `.ci/run` makes from
//! `tests/interop/requirements.txt`) and this server read and write the same
//! database, and must agree on every field. Runs on SQLite, PostgreSQL and MariaDB
//! (Buildbot's tables made with `storage_engine=InnoDB`).
//!
//! Needs `BUILDBOT_PYTHON` (the venv's python); under CI a missing one fails.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use buildsets_graphql::store::{self, SchemaMode};
use common::http::start;
use common::{empty_database, schema_snapshot, Backend, TestDb};
use sea_orm::ConnectionTrait as _;
use serde_json::{json, Value};

fn python() -> Option<String> {
    match std::env::var("BUILDBOT_PYTHON")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("BUILDBOT_PYTHON is not set: .ci/run makes the Buildbot virtualenv and sets it")
        }
        None => {
            eprintln!("SKIPPED interop: BUILDBOT_PYTHON is not set (run .ci/run)");
            None
        }
    }
}

/// Runs one `bb.py` command against `url`; returns its JSON output.
fn bb(py: &str, command: &str, url: &str, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/bb.py");
    let out = Command::new(py)
        .arg(script)
        .arg(command)
        .arg(url)
        .args(args)
        .output()
        .expect("run bb.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bb.py {command} failed:\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("bb.py {command} printed no JSON ({e}): {stdout}"))
}

/// A list of `{name, value, source}` as Buildbot's `{name: [value, source]}`.
fn by_name(list: &Value) -> Value {
    Value::Object(
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    json!([p["value"], p["source"]]),
                )
            })
            .collect(),
    )
}

/// Buildbot reads a buildset's sourcestamps without ORDER BY, so MySQL hands them
/// back in index order (by id) rather than in the order given; elsewhere, and in this
/// API everywhere, they come in the order given.
fn same_stamps(backend: Backend, ours: &Value, theirs: &Value) -> bool {
    if backend != Backend::MySql {
        return ours == theirs;
    }
    let sorted = |v: &Value| {
        let mut ids: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    };
    sorted(ours) == sorted(theirs)
}

fn epoch(v: &Value) -> Value {
    match v.as_str() {
        Some(s) => json!(chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()),
        None => Value::Null,
    }
}

/// Buildbot stores -1 for "no result yet"; the API shows null until complete.
fn api_results(buildbot: &Value, complete: &Value) -> Value {
    if complete == &json!(true) {
        buildbot.clone()
    } else {
        Value::Null
    }
}

const EVERYTHING: &str = "query { buildsets(first: 100) { nodes {
    bsid externalIdstring reason submittedAt complete completeAt results
    parentBuildid parentRelationship rebuiltBuildid sourcestampIds
    sourcestamps { ssid branch revision repository codebase project createdAt
                   patch { patchid level subdir author comment body } }
    properties { name value source }
    buildrequests { buildrequestid builderid priority complete results submittedAt completeAt waitedFor builder { name } } } } }";

async fn buildbot_and_us_agree(backend: Backend) {
    let Some(py) = python() else { return };
    let Some((url, dir)) = empty_database(backend, &format!("interop_{backend:?}")).await else {
        return;
    };
    bb(&py, "create", &url, &[]);
    let made = bb(&py, "populate", &url, &[]);

    let t = TestDb::attach(backend, url.clone(), dir).await;
    assert_eq!(
        t.mode,
        SchemaMode::Attached,
        "a Buildbot database is attached, not migrated"
    );
    let schema_before = schema_snapshot(&t.db).await;
    let api = start(t, &[]).await;

    // Shared identity: builder names and stamp descriptions map to Buildbot's ids.
    let ensure = "mutation($n: String!) { ensureBuilder(name: $n) { builderid } }";
    let linux =
        api.ok(ensure, json!({"n": "bb-linux"})).await["ensureBuilder"]["builderid"].clone();
    assert_eq!(linux, made["builders"]["bb-linux"]);
    let ours =
        api.ok(ensure, json!({"n": "ours-builder"})).await["ensureBuilder"]["builderid"].clone();
    let found = bb(&py, "find-builder", &url, &["ours-builder"]);
    assert_eq!(
        found["builderid"], ours,
        "Buildbot finds the builder we created"
    );

    // Our writes, with every feature, for Buildbot to read.
    let add = "mutation($i: AddBuildsetInput!) { addBuildset(input: $i) { bsid brids { buildrequestid } buildset { sourcestampIds } } }";
    let props = json!([
        {"name": "int", "value": 1, "source": "S"}, {"name": "float", "value": 1.0, "source": "S"},
        {"name": "str", "value": "1", "source": "S"}, {"name": "bool", "value": false, "source": "T"},
        {"name": "null", "value": null, "source": "T"}, {"name": "list", "value": [1, [2.5, "x"], {"k": null}], "source": "U"},
        {"name": "dict", "value": {"z": 1, "a": {"ü": "é 😀"}}, "source": "U"}
    ]);
    let a = api.ok(add, json!({"i": {
        "sourcestamps": [
            {"stamp": {"branch": "shared-bb", "repository": "r"}},
            {"stamp": {"branch": "ours-only", "revision": "abc", "repository": "https://example.org/ours.git", "project": "p", "codebase": "c"}},
            {"stamp": {"branch": "patched", "patch": {"body": "--- a\n+++ b\n@@ x\n", "level": 0, "author": "bob", "comment": "ours", "subdir": "deep/er"}}}
        ],
        "reason": "we wrote this", "properties": props, "builderids": [ours, linux],
        "externalIdstring": "ours-ext", "submittedAt": "2023-11-14T22:20:00Z",
        "parentBuildid": made["buildid"], "parentRelationship": "ours", "rebuiltBuildid": made["buildid"],
        "waitedFor": true, "priority": 5
    }})).await;
    let a_ss = a["addBuildset"]["buildset"]["sourcestampIds"].clone();
    assert_eq!(
        a_ss[0], made["shared_ssid"],
        "the same description is the same sourcestamp"
    );
    let ours_only = json!({"branch": "ours-only", "revision": "abc", "repository": "https://example.org/ours.git", "project": "p", "codebase": "c"});
    assert_eq!(
        bb(&py, "find-ss", &url, &[&ours_only.to_string()])["ssid"],
        a_ss[1],
        "Buildbot finds our sourcestamp"
    );
    for (i, results) in [(0, Some(5)), (1, None)] {
        let b = api
            .ok(
                add,
                json!({"i": {"sourcestamps": [{"ssid": a_ss[1]}], "reason": format!("ours {i}"),
            "builderids": [linux], "submittedAt": format!("2023-11-14T22:3{i}:00Z")}}),
            )
            .await;
        if let Some(r) = results {
            // Attached, a buildset is the master's to complete while a request of its
            // is unfinished: the master finishes the request first.
            let q = "mutation($b: Int!, $r: Int!) { completeBuildset(bsid: $b, results: $r, completeAt: \"2023-11-15T00:00:00Z\") { bsid } }";
            let bsid = &b["addBuildset"]["bsid"];
            assert_eq!(
                api.err(q, json!({"b": bsid, "r": r})).await.0,
                "BUILD_REQUESTS_UNFINISHED"
            );
            let brid = &b["addBuildset"]["brids"][0]["buildrequestid"];
            api.t
                .db
                .execute_unprepared(&format!(
                    "UPDATE buildrequests SET complete = 1, results = {r}, complete_at = 1700006400 WHERE id = {brid}"
                ))
                .await
                .unwrap();
            api.ok(q, json!({"b": bsid, "r": r})).await;
        }
    }
    // A build id that is not in Buildbot's builds table is refused, naming the field.
    let bad = json!({"i": {"sourcestamps": [{"ssid": a_ss[1]}], "reason": "x", "builderids": [], "rebuiltBuildid": 999_999}});
    assert_eq!(
        api.err(add, bad).await,
        ("BAD_USER_INPUT".into(), "rebuiltBuildid".into())
    );

    // Everything, read both ways.
    let theirs = bb(&py, "dump", &url, &[]);

    // What we wrote is what Buildbot reads: exactly the values given.
    let a_id = a["addBuildset"]["bsid"].as_i64().unwrap();
    let tb = theirs["buildsets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bsid"] == json!(a_id))
        .unwrap();
    assert_eq!(tb["reason"], "we wrote this");
    assert_eq!(tb["external_idstring"], "ours-ext");
    assert_eq!(tb["submitted_at"], json!(1_700_000_400));
    assert_eq!(
        (tb["complete"].clone(), tb["results"].clone()),
        (json!(false), json!(-1))
    );
    assert_eq!(
        (tb["parent_buildid"].clone(), tb["rebuilt_buildid"].clone()),
        (made["buildid"].clone(), made["buildid"].clone())
    );
    assert_eq!(tb["parent_relationship"], "ours");
    assert!(same_stamps(backend, &tb["sourcestamps"], &a_ss));
    let given = by_name(&props);
    assert_eq!(
        theirs["properties"][a_id.to_string()],
        given,
        "properties as given"
    );
    let patched = &theirs["sourcestamps"][a_ss[2].to_string()];
    assert_eq!(patched["branch"], "patched");
    assert_eq!(patched["patch"]["body"], "--- a\n+++ b\n@@ x\n");
    assert_eq!(
        (
            patched["patch"]["level"].clone(),
            patched["patch"]["author"].clone()
        ),
        (json!(0), json!("bob"))
    );
    assert_eq!(
        (
            patched["patch"]["comment"].clone(),
            patched["patch"]["subdir"].clone()
        ),
        (json!("ours"), json!("deep/er"))
    );
    let stamp = &theirs["sourcestamps"][a_ss[1].to_string()];
    assert_eq!(
        [
            &stamp["branch"],
            &stamp["revision"],
            &stamp["repository"],
            &stamp["project"],
            &stamp["codebase"]
        ],
        [
            &json!("ours-only"),
            &json!("abc"),
            &json!("https://example.org/ours.git"),
            &json!("p"),
            &json!("c")
        ]
    );
    let brs = theirs["buildrequests"][a_id.to_string()]
        .as_array()
        .unwrap();
    assert_eq!(
        brs.iter()
            .map(|r| r["builderid"].clone())
            .collect::<Vec<_>>(),
        vec![ours.clone(), linux.clone()]
    );
    assert_eq!(brs[0]["buildername"], "ours-builder");
    for r in brs {
        assert_eq!(
            (
                r["priority"].clone(),
                r["waited_for"].clone(),
                r["complete"].clone()
            ),
            (json!(5), json!(true), json!(false))
        );
        assert_eq!(
            (r["results"].clone(), r["submitted_at"].clone()),
            (json!(-1), json!(1_700_000_400))
        );
    }
    let done = theirs["buildsets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["reason"] == "ours 0")
        .unwrap();
    assert_eq!(
        (
            done["complete"].clone(),
            done["results"].clone(),
            done["complete_at"].clone()
        ),
        (json!(true), json!(5), json!(1_700_006_400))
    );
    // What an outside client reads (Python's urllib and json, no code of ours) is
    // what Buildbot reads, field by field, types included.
    let seen = bb(&py, "compare", &url, &[&api.url("/graphql")]);
    assert_eq!(
        seen["mismatches"],
        json!([]),
        "Buildbot and an outside client disagree: {seen:#}"
    );
    assert!(seen["compared"].as_u64().unwrap_or(0) >= 11, "{seen}");
    let mine = api.ok(EVERYTHING, json!({})).await["buildsets"]["nodes"].clone();
    let mine: BTreeMap<i64, Value> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["bsid"].as_i64().unwrap(), b.clone()))
        .collect();
    let their_bs = theirs["buildsets"].as_array().unwrap();
    assert_eq!(their_bs.len(), mine.len());
    assert!(their_bs.len() >= 11, "Buildbot's 8 and our 3 buildsets");
    for tb in their_bs {
        let bsid = tb["bsid"].as_i64().unwrap();
        let ob = &mine[&bsid];
        let ctx = format!("buildset {bsid}");
        assert_eq!(ob["externalIdstring"], tb["external_idstring"], "{ctx}");
        assert_eq!(ob["reason"], tb["reason"], "{ctx}");
        assert_eq!(epoch(&ob["submittedAt"]), tb["submitted_at"], "{ctx}");
        assert_eq!(ob["complete"], tb["complete"], "{ctx}");
        assert_eq!(epoch(&ob["completeAt"]), tb["complete_at"], "{ctx}");
        assert_eq!(
            ob["results"],
            api_results(&tb["results"], &tb["complete"]),
            "{ctx}"
        );
        assert_eq!(ob["parentBuildid"], tb["parent_buildid"], "{ctx}");
        assert_eq!(ob["parentRelationship"], tb["parent_relationship"], "{ctx}");
        assert_eq!(ob["rebuiltBuildid"], tb["rebuilt_buildid"], "{ctx}");
        assert!(
            same_stamps(backend, &ob["sourcestampIds"], &tb["sourcestamps"]),
            "{ctx}: sourcestamps {} vs Buildbot's {}",
            ob["sourcestampIds"],
            tb["sourcestamps"]
        );
        // Properties: same names, values (1 stays 1, 1.0 stays 1.0) and sources.
        let their_props = &theirs["properties"][bsid.to_string()];
        assert_eq!(
            &by_name(&ob["properties"]),
            their_props,
            "{ctx}: properties"
        );
        for os in ob["sourcestamps"].as_array().unwrap() {
            let ssid = &os["ssid"];
            let ts = &theirs["sourcestamps"][ssid.to_string()];
            for (mine_key, their_key) in [
                ("ssid", "ssid"),
                ("branch", "branch"),
                ("revision", "revision"),
                ("repository", "repository"),
                ("codebase", "codebase"),
                ("project", "project"),
            ] {
                assert_eq!(
                    os[mine_key], ts[their_key],
                    "{ctx}: sourcestamp {ssid} {their_key}"
                );
            }
            assert_eq!(
                epoch(&os["createdAt"]),
                ts["created_at"],
                "{ctx}: sourcestamp {ssid} created_at"
            );
            assert_eq!(
                os["patch"].is_null(),
                ts["patch"].is_null(),
                "{ctx}: sourcestamp {ssid} patch"
            );
            if !ts["patch"].is_null() {
                for k in ["patchid", "level", "subdir", "author", "comment", "body"] {
                    assert_eq!(os["patch"][k], ts["patch"][k], "{ctx}: patch {k}");
                }
            }
        }
        let their_brs = theirs["buildrequests"][bsid.to_string()]
            .as_array()
            .unwrap();
        let my_brs = ob["buildrequests"].as_array().unwrap();
        assert_eq!(my_brs.len(), their_brs.len(), "{ctx}: build requests");
        for (o, t) in my_brs.iter().zip(their_brs) {
            assert_eq!(o["buildrequestid"], t["buildrequestid"], "{ctx}");
            assert_eq!(o["builderid"], t["builderid"], "{ctx}");
            assert_eq!(o["builder"]["name"], t["buildername"], "{ctx}");
            assert_eq!(o["priority"], t["priority"], "{ctx}");
            assert_eq!(o["complete"], t["complete"], "{ctx}");
            assert_eq!(
                o["results"],
                api_results(&t["results"], &t["complete"]),
                "{ctx}"
            );
            assert_eq!(epoch(&o["submittedAt"]), t["submitted_at"], "{ctx}");
            assert_eq!(epoch(&o["completeAt"]), t["complete_at"], "{ctx}");
            assert_eq!(o["waitedFor"], t["waited_for"], "{ctx}");
        }
    }
    // getBuildset, one by one, agrees with buildset(bsid:).
    let one = "query($b: Int!) { buildset(bsid: $b) { bsid externalIdstring reason submittedAt complete completeAt results parentBuildid parentRelationship rebuiltBuildid sourcestampIds } }";
    for (bsid, tb) in theirs["single"].as_object().unwrap() {
        let ob = api
            .ok(one, json!({"b": bsid.parse::<i64>().unwrap()}))
            .await["buildset"]
            .clone();
        for (mine_key, their_key) in [
            ("bsid", "bsid"),
            ("externalIdstring", "external_idstring"),
            ("reason", "reason"),
            ("complete", "complete"),
            ("parentBuildid", "parent_buildid"),
            ("parentRelationship", "parent_relationship"),
            ("rebuiltBuildid", "rebuilt_buildid"),
        ] {
            assert_eq!(
                ob[mine_key], tb[their_key],
                "getBuildset({bsid}).{their_key}"
            );
        }
        assert!(
            same_stamps(backend, &ob["sourcestampIds"], &tb["sourcestamps"]),
            "getBuildset({bsid}) sourcestamps"
        );
        assert_eq!(
            epoch(&ob["submittedAt"]),
            tb["submitted_at"],
            "getBuildset({bsid})"
        );
        assert_eq!(
            epoch(&ob["completeAt"]),
            tb["complete_at"],
            "getBuildset({bsid})"
        );
        assert_eq!(
            ob["results"],
            api_results(&tb["results"], &tb["complete"]),
            "getBuildset({bsid})"
        );
    }
    assert_eq!(theirs["single"].as_object().unwrap().len(), their_bs.len());

    // The list operations agree too.
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b["bsid"].clone())
            .collect::<Vec<_>>()
    };
    for (complete, key) in [(true, "complete"), (false, "incomplete")] {
        let q = "query($c: Boolean) { buildsets(complete: $c, first: 1000) { nodes { bsid } } }";
        let got = api.ok(q, json!({"c": complete})).await;
        assert_eq!(
            Value::Array(ids(&got["buildsets"]["nodes"])),
            theirs[key],
            "getBuildsets(complete={complete})"
        );
    }
    let recent = "query($n: Int!, $b: String, $r: String, $c: Boolean) { recentBuildsets(count: $n, branch: $b, repository: $r, complete: $c) { bsid } }";
    for (name, vars) in [
        ("3", json!({"n": 3})),
        ("all", json!({"n": 100})),
        ("main", json!({"n": 100, "b": "main"})),
        ("repo", json!({"n": 100, "r": "git://x"})),
        ("complete2", json!({"n": 2, "c": true})),
        ("incomplete", json!({"n": 100, "c": false})),
    ] {
        let got = api.ok(recent, vars).await;
        assert_eq!(
            Value::Array(ids(&got["recentBuildsets"])),
            theirs["recent"][name],
            "getRecentBuildsets {name}"
        );
    }
    let props = api
        .ok(
            "query($b: Int!) { buildsetProperties(bsid: $b) { name value source } }",
            json!({"b": made["bsids"][0]}),
        )
        .await;
    let props = by_name(&props["buildsetProperties"]);
    assert_eq!(
        props,
        theirs["properties"][made["bsids"][0].to_string()],
        "getBuildsetProperties"
    );

    // Nothing about the schema changed.
    assert_eq!(
        schema_snapshot(&api.t.db).await,
        schema_before,
        "no DDL on a Buildbot database"
    );
}

/// A database our migrations made equals one Buildbot made, for the seven tables,
/// except the foreign keys whose target tables only a Buildbot database has.
async fn schema_matches_buildbot(backend: Backend) {
    let Some(py) = python() else { return };
    let Some((theirs_url, _d1)) = empty_database(backend, &format!("bbschema_{backend:?}")).await
    else {
        return;
    };
    let Some((ours_url, _d2)) = empty_database(backend, &format!("ourschema_{backend:?}")).await
    else {
        return;
    };
    bb(&py, "create", &theirs_url, &[]);
    let db = store::connect(&ours_url).await.unwrap();
    assert_eq!(
        store::prepare_schema(&db).await.unwrap(),
        SchemaMode::Standalone
    );
    let mut theirs = bb(&py, "schema", &theirs_url, &[]);
    let ours = bb(&py, "schema", &ours_url, &[]);
    // Documented difference: builds(id) and projects(id) exist only in Buildbot's database.
    let expected = json!({
        "buildsets": [
            {"columns": ["parent_buildid"], "ondelete": "SET NULL", "referred": ["id"], "table": "builds"},
            {"columns": ["rebuilt_buildid"], "ondelete": "SET NULL", "referred": ["id"], "table": "builds"}
        ],
        "builders": [{"columns": ["projectid"], "ondelete": "SET NULL", "referred": ["id"], "table": "projects"}]
    });
    if backend == Backend::MySql {
        // MySQL gives each of those foreign keys an index of its own, named after the column.
        let indexes = theirs["buildsets"]["indexes"].as_array_mut().unwrap();
        for column in ["parent_buildid", "rebuilt_buildid"] {
            let before = indexes.len();
            indexes.retain(|i| i != &json!({"columns": [column], "name": column, "unique": false}));
            assert_eq!(indexes.len(), before - 1, "Buildbot's MySQL index {column}");
        }
    }
    for (table, fks) in expected.as_object().unwrap() {
        let list = theirs[table]["foreign_keys"].as_array_mut().unwrap();
        for fk in fks.as_array().unwrap() {
            let before = list.len();
            list.retain(|f| f != fk);
            assert_eq!(list.len(), before - 1, "Buildbot's {table} has {fk}");
        }
    }
    for table in theirs.as_object().unwrap().keys() {
        assert_eq!(ours[table], theirs[table], "table {table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_buildbot_and_us_agree() {
    buildbot_and_us_agree(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_buildbot_and_us_agree() {
    buildbot_and_us_agree(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_buildbot_and_us_agree() {
    buildbot_and_us_agree(Backend::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_schema_matches_buildbot() {
    schema_matches_buildbot(Backend::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_schema_matches_buildbot() {
    schema_matches_buildbot(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_matches_buildbot() {
    schema_matches_buildbot(Backend::Postgres).await;
}
