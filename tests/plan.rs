//! The page loader is the only way nested data is read, so every field that needs a
//! relation must be planned by `graphql::plan::relations`. This test asks the schema
//! itself for every field of every output type and selects each one through every
//! way of reaching that type; a field the plan misses (a new or renamed one) answers
//! an error, and the test names it.

mod common;

use common::http::start;
use common::{fresh, Backend};
use serde_json::{json, Value};

const TYPE_FIELDS: &str = "query($t: String!) { __type(name: $t) { fields {
    name args { name type { kind name ofType { kind name } } }
    type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }";

/// The named type at the bottom of a field's type (through lists and non-nulls).
fn kind_of(t: &Value) -> &str {
    match t["ofType"].is_null() {
        true => t["kind"].as_str().unwrap_or_default(),
        false => kind_of(&t["ofType"]),
    }
}

/// A selection of `field`: its required arguments given, and `__typename` below an
/// object, which is all it takes for the field to need its relation.
fn select(field: &Value) -> String {
    let args: Vec<String> = field["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"]["kind"] == "NON_NULL")
        .map(|a| format!("{}: \"p\"", a["name"].as_str().unwrap()))
        .collect();
    let name = field["name"].as_str().unwrap();
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    };
    match kind_of(&field["type"]) {
        "OBJECT" | "INTERFACE" => format!("{name}{args} {{ __typename }}"),
        _ => format!("{name}{args}"),
    }
}

#[tokio::test]
async fn every_field_is_planned_through_every_entry_point() {
    let t = fresh(Backend::Sqlite, "plan")
        .await
        .expect("sqlite always runs");
    let api = start(t, &[]).await;
    let builder = api
        .ok(
            "mutation { ensureBuilder(name: \"b\") { builderid } }",
            json!({}),
        )
        .await["ensureBuilder"]["builderid"]
        .clone();
    let add = "mutation($i: AddBuildsetInput!) { addBuildset(input: $i) { bsid buildset {
        id sourcestamps { id ssid } buildrequests { id buildrequestid } } } }";
    let input = json!({"i": {"reason": "plan", "builderids": [builder],
        "sourcestamps": [{"stamp": {"branch": "main", "patch": {"body": "--- a\n"}}}],
        "properties": [{"name": "p", "value": 1, "source": "s"}]}});
    let added = api.ok(add, input.clone()).await["addBuildset"].clone();
    let bs = &added["buildset"];
    let (bsid, bs_node) = (added["bsid"].clone(), bs["id"].as_str().unwrap().to_owned());
    let ss = &bs["sourcestamps"][0];
    let (ssid, ss_node) = (ss["ssid"].clone(), ss["id"].as_str().unwrap().to_owned());
    let br = &bs["buildrequests"][0];
    let (brid, br_node) = (
        br["buildrequestid"].clone(),
        br["id"].as_str().unwrap().to_owned(),
    );

    let entries: Vec<(&str, Vec<String>)> = vec![
        (
            "Buildset",
            vec![
                format!("{{ buildset(bsid: {bsid}) {{ % }} }}"),
                "{ buildsets { nodes { % } } }".into(),
                "{ buildsets { edges { node { % } } } }".into(),
                "{ recentBuildsets(count: 5) { % } }".into(),
                format!("{{ node(id: \"{bs_node}\") {{ ... on Buildset {{ % }} }} }}"),
                format!("{{ buildrequest(buildrequestid: {brid}) {{ buildset {{ % }} }} }}"),
                "{ buildsets { nodes { buildrequests { buildset { % } } } } }".into(),
                format!("{{ node(id: \"{br_node}\") {{ ... on BuildRequest {{ buildset {{ % }} }} }} }}"),
                "mutation($i: AddBuildsetInput!) { addBuildset(input: $i) { buildset { % } } }".into(),
                "mutation($i: AddBuildsetInput!) { addBuildset(input: $i) { buildset { buildrequests { buildset { % } } } } }".into(),
            ],
        ),
        (
            "BuildRequest",
            vec![
                format!("{{ buildset(bsid: {bsid}) {{ buildrequests {{ % }} }} }}"),
                "{ buildsets { nodes { buildrequests { % } } } }".into(),
                format!("{{ buildrequest(buildrequestid: {brid}) {{ % }} }}"),
                format!("{{ node(id: \"{br_node}\") {{ ... on BuildRequest {{ % }} }} }}"),
                format!("{{ buildrequest(buildrequestid: {brid}) {{ buildset {{ buildrequests {{ % }} }} }} }}"),
            ],
        ),
        (
            "SourceStamp",
            vec![
                format!("{{ buildset(bsid: {bsid}) {{ sourcestamps {{ % }} }} }}"),
                "{ buildsets { edges { node { sourcestamps { % } } } } }".into(),
                format!("{{ sourcestamp(ssid: {ssid}) {{ % }} }}"),
                format!("{{ node(id: \"{ss_node}\") {{ ... on SourceStamp {{ % }} }} }}"),
                "{ buildsets { nodes { buildrequests { buildset { sourcestamps { % } } } } } }".into(),
            ],
        ),
        (
            "Patch",
            vec![
                format!("{{ buildset(bsid: {bsid}) {{ sourcestamps {{ patch {{ % }} }} }} }}"),
                format!("{{ sourcestamp(ssid: {ssid}) {{ patch {{ % }} }} }}"),
            ],
        ),
        (
            "Property",
            vec![
                format!("{{ buildset(bsid: {bsid}) {{ properties {{ % }} }} }}"),
                format!("{{ buildset(bsid: {bsid}) {{ property(name: \"p\") {{ % }} }} }}"),
                format!("{{ buildsetProperties(bsid: {bsid}) {{ % }} }}"),
            ],
        ),
        (
            "Builder",
            vec![
                "{ builders { % } }".into(),
                format!("{{ builder(builderid: {builder}) {{ % }} }}"),
                "{ buildsets { nodes { buildrequests { builder { % } } } } }".into(),
            ],
        ),
    ];
    let mut checked = 0;
    for (type_name, paths) in &entries {
        let fields = api.ok(TYPE_FIELDS, json!({"t": type_name})).await["__type"]["fields"].clone();
        let fields = fields.as_array().expect("the type exists");
        assert!(!fields.is_empty(), "{type_name} has fields");
        for field in fields {
            let selection = select(field);
            for path in paths {
                let query = path.replace('%', &selection);
                let body = api.post(&query, input.clone()).await;
                assert!(
                    body.get("errors").is_none(),
                    "{type_name}.{} is not planned through `{query}`: {body:#}",
                    field["name"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "{checked} selections");
}
