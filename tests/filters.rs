//! Every filter operator on every filterable column, checked against an oracle that
//! evaluates the same filter in Rust with SQL's null rules, on every backend.

mod common;

use std::cmp::Ordering;

use common::http::{start, Api};
use common::TestDb;
use serde_json::{json, Value};

on_every_backend! {
    every_operator_on_every_column => every_operator_on_every_column;
}

#[derive(Clone, Debug, PartialEq)]
enum V {
    Int(i64),
    Str(String),
    /// A time, as epoch seconds.
    Time(i64),
}

impl V {
    fn json(&self) -> Value {
        match self {
            V::Int(i) => json!(i),
            V::Str(s) => json!(s),
            V::Time(t) => json!(at(*t)),
        }
    }
    fn cmp(&self, other: &V) -> Ordering {
        match (self, other) {
            (V::Int(a), V::Int(b)) | (V::Time(a), V::Time(b)) => a.cmp(b),
            (V::Str(a), V::Str(b)) => a.cmp(b),
            _ => unreachable!("compared values of one column"),
        }
    }
}

fn at(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap()
        .to_rfc3339()
}

/// A buildset as the oracle sees it: each column's values (several for the to-many ones).
#[derive(Default, Clone)]
struct Row {
    bsid: i64,
    cols: Vec<(&'static str, Vec<Option<V>>)>,
}

impl Row {
    fn values(&self, col: &str) -> &[Option<V>] {
        &self.cols.iter().find(|c| c.0 == col).unwrap().1
    }
}

const COLUMNS: [(&str, char); 13] = [
    ("bsid", 'i'),
    ("reason", 's'),
    ("externalIdstring", 's'),
    ("submittedAt", 't'),
    ("completeAt", 't'),
    ("results", 'i'),
    ("parentBuildid", 'i'),
    ("rebuiltBuildid", 'i'),
    ("branch", 's'),
    ("repository", 's'),
    ("project", 's'),
    ("codebase", 's'),
    ("builderid", 'i'),
];

/// Whether one value satisfies `op` with `arg` (SQL rules: null only matches isNull).
fn holds(value: &Option<V>, op: &str, arg: &Value, col_kind: char) -> bool {
    let parse = |a: &Value| match col_kind {
        'i' => V::Int(a.as_i64().unwrap()),
        's' => V::Str(a.as_str().unwrap().to_owned()),
        _ => V::Time(
            chrono::DateTime::parse_from_rfc3339(a.as_str().unwrap())
                .unwrap()
                .timestamp(),
        ),
    };
    if op == "isNull" {
        return value.is_none() == arg.as_bool().unwrap();
    }
    let Some(v) = value else { return false };
    match op {
        "eq" => v.cmp(&parse(arg)).is_eq(),
        "ne" => v.cmp(&parse(arg)).is_ne(),
        "lt" => v.cmp(&parse(arg)).is_lt(),
        "le" => v.cmp(&parse(arg)).is_le(),
        "gt" => v.cmp(&parse(arg)).is_gt(),
        "ge" => v.cmp(&parse(arg)).is_ge(),
        "in" => arg
            .as_array()
            .unwrap()
            .iter()
            .any(|a| v.cmp(&parse(a)).is_eq()),
        "notIn" => arg
            .as_array()
            .unwrap()
            .iter()
            .all(|a| v.cmp(&parse(a)).is_ne()),
        "contains" | "startsWith" => {
            let (V::Str(s), Some(needle)) = (v, arg.as_str()) else {
                unreachable!()
            };
            if op == "contains" {
                s.contains(needle)
            } else {
                s.starts_with(needle)
            }
        }
        _ => unreachable!("{op}"),
    }
}

async fn add(api: &Api, input: Value) -> i64 {
    let q = "mutation($i: AddBuildsetInput!) { addBuildset(input: $i) { bsid } }";
    api.ok(q, json!({"i": input})).await["addBuildset"]["bsid"]
        .as_i64()
        .unwrap()
}

/// Eight buildsets whose columns take repeated, distinct and null values, some with
/// several sourcestamps and build requests; returns the oracle's view of them.
async fn fixture(api: &Api) -> Vec<Row> {
    let mut builders = Vec::new();
    for name in ["a", "b", "c"] {
        let q = "mutation($n: String!) { ensureBuilder(name: $n) { builderid } }";
        builders.push(
            api.ok(q, json!({"n": name})).await["ensureBuilder"]["builderid"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut rows = Vec::new();
    for i in 0..8i64 {
        let stamps: Vec<(Option<String>, String, String, String)> = (0..(i % 3))
            .map(|k| {
                let n = i + k;
                (
                    (n % 4 != 3).then(|| format!("br{}", n % 3)),
                    format!("https://h/repo{}.git", n % 2),
                    ["", "proj"][(n % 2) as usize].to_owned(),
                    format!("cb{}", n % 3),
                )
            })
            .chain(
                std::iter::once((
                    Some("main".to_owned()),
                    String::new(),
                    String::new(),
                    String::new(),
                ))
                .take(usize::from(i % 3 == 0)),
            )
            .collect();
        let bldrs: Vec<i64> = builders
            .iter()
            .copied()
            .filter(|b| (b + i) % 2 == 0)
            .collect();
        let reason = format!("reason-{}", i % 5);
        let ext = (i % 4 != 1).then(|| format!("ext-{}", i % 3));
        let submitted = 1_600_000_000 + (i / 3) * 60;
        let parent = (i % 3 == 1).then_some(100 + i % 2);
        let rebuilt = (i % 4 == 2).then_some(200 + i);
        let input = json!({
            "sourcestamps": stamps.iter().map(|(b, r, p, c)| json!({"stamp": {"branch": b, "repository": r, "project": p, "codebase": c}})).collect::<Vec<_>>(),
            "reason": reason,
            "externalIdstring": ext,
            "builderids": bldrs,
            "submittedAt": at(submitted),
            "parentBuildid": parent,
            "rebuiltBuildid": rebuilt,
        });
        let bsid = add(api, input).await;
        let (results, complete_at) = if i % 3 == 2 {
            (None, None)
        } else {
            let (r, t) = (i % 4, 1_700_000_000 + (i % 2) * 30);
            let q = "mutation($b: Int!, $r: Int!, $t: DateTime) { completeBuildset(bsid: $b, results: $r, completeAt: $t) { bsid } }";
            api.ok(q, json!({"b": bsid, "r": r, "t": at(t)})).await;
            (Some(r), Some(t))
        };
        let s = |v: &str| Some(V::Str(v.to_owned()));
        rows.push(Row {
            bsid,
            cols: vec![
                ("bsid", vec![Some(V::Int(bsid))]),
                ("reason", vec![s(&reason)]),
                ("externalIdstring", vec![ext.as_deref().and_then(s)]),
                ("submittedAt", vec![Some(V::Time(submitted))]),
                ("completeAt", vec![complete_at.map(V::Time)]),
                ("results", vec![results.map(V::Int)]),
                ("parentBuildid", vec![parent.map(V::Int)]),
                ("rebuiltBuildid", vec![rebuilt.map(V::Int)]),
                (
                    "branch",
                    stamps.iter().map(|x| x.0.as_deref().and_then(s)).collect(),
                ),
                ("repository", stamps.iter().map(|x| s(&x.1)).collect()),
                ("project", stamps.iter().map(|x| s(&x.2)).collect()),
                ("codebase", stamps.iter().map(|x| s(&x.3)).collect()),
                (
                    "builderid",
                    bldrs.iter().map(|b| Some(V::Int(*b))).collect(),
                ),
            ],
        });
    }
    rows
}

async fn every_operator_on_every_column(t: TestDb) {
    let api = start(t, &[]).await;
    let rows = fixture(&api).await;
    let mut cases: Vec<(Value, Vec<i64>)> = Vec::new();
    for (col, kind) in COLUMNS {
        let mut present: Vec<V> = rows
            .iter()
            .flat_map(|r| r.values(col).iter().flatten().cloned())
            .collect();
        present.sort_by(|a, b| a.cmp(b));
        present.dedup();
        assert!(present.len() >= 2, "{col} needs distinct values");
        let absent = match kind {
            'i' => V::Int(987_654),
            's' => V::Str("absent".into()),
            _ => V::Time(1_000),
        };
        let probes = [
            present[0].clone(),
            present[present.len() / 2].clone(),
            present[present.len() - 1].clone(),
            absent.clone(),
        ];
        let mut args: Vec<(&str, Value)> = Vec::new();
        for p in &probes {
            for op in ["eq", "ne", "lt", "le", "gt", "ge"] {
                args.push((op, p.json()));
            }
        }
        args.push((
            "in",
            json!([probes[0].json(), probes[1].json(), absent.json()]),
        ));
        args.push(("in", json!([])));
        args.push(("notIn", json!([probes[0].json(), probes[2].json()])));
        args.push(("notIn", json!([])));
        args.push(("isNull", json!(true)));
        args.push(("isNull", json!(false)));
        if kind == 's' {
            for p in &probes[..3] {
                let V::Str(s) = p else { unreachable!() };
                let chars: Vec<char> = s.chars().collect();
                let mid: String = chars.iter().skip(chars.len() / 3).take(3).collect();
                let head: String = chars.iter().take(4).collect();
                args.push(("contains", json!(mid)));
                args.push(("startsWith", json!(head)));
            }
            args.push(("contains", json!("%")));
            args.push(("startsWith", json!("_")));
        }
        for (op, arg) in args {
            let expect: Vec<i64> = rows
                .iter()
                .filter(|r| r.values(col).iter().any(|v| holds(v, op, &arg, kind)))
                .map(|r| r.bsid)
                .collect();
            cases.push((json!({ col: { op: arg } }), expect));
        }
    }
    // Boolean structure over the oracle too.
    let a = json!({"results": {"ge": 1}});
    let b = json!({"branch": {"eq": "br1"}});
    let eval = |f: &Value| -> Vec<bool> {
        let (col, ops) = f.as_object().unwrap().iter().next().unwrap();
        let (op, arg) = ops.as_object().unwrap().iter().next().unwrap();
        let kind = COLUMNS.iter().find(|c| c.0 == col).unwrap().1;
        rows.iter()
            .map(|r| r.values(col).iter().any(|v| holds(v, op, arg, kind)))
            .collect()
    };
    let (ea, eb) = (eval(&a), eval(&b));
    let ids = |pred: &dyn Fn(usize) -> bool| {
        (0..rows.len())
            .filter(|&i| pred(i))
            .map(|i| rows[i].bsid)
            .collect::<Vec<_>>()
    };
    cases.push((json!({"and": [a, b]}), ids(&|i| ea[i] && eb[i])));
    cases.push((json!({"or": [a, b]}), ids(&|i| ea[i] || eb[i])));
    cases.push((
        json!({"results": {"ge": 1}, "branch": {"eq": "br1"}}),
        ids(&|i| ea[i] && eb[i]),
    ));
    // NOT follows SQL: NOT over an unknown (null) comparison is still unknown.
    let known = |i: usize| rows[i].values("results")[0].is_some();
    cases.push((json!({"not": a}), ids(&|i| known(i) && !ea[i])));
    cases.push((json!({"not": b}), ids(&|i| !eb[i])));

    // Forty filters per request, as aliases.
    for chunk in cases.chunks(40) {
        let decls: Vec<String> = (0..chunk.len())
            .map(|i| format!("$w{i}: BuildsetFilter"))
            .collect();
        let fields: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "q{i}: buildsets(first: 20, where: $w{i}) {{ nodes {{ bsid }} totalCount }}"
                )
            })
            .collect();
        let q = format!("query({}) {{ {} }}", decls.join(", "), fields.join(" "));
        let vars: serde_json::Map<String, Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("w{i}"), c.0.clone()))
            .collect();
        let data = api.ok(&q, Value::Object(vars)).await;
        for (i, (filter, expect)) in chunk.iter().enumerate() {
            let got: Vec<i64> = data[format!("q{i}")]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["bsid"].as_i64().unwrap())
                .collect();
            assert_eq!(&got, expect, "filter {filter}");
            assert_eq!(
                data[format!("q{i}")]["totalCount"],
                json!(expect.len()),
                "count of {filter}"
            );
        }
    }
    println!("checked {} filters against the oracle", cases.len());
}
