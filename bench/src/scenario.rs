//! The scenarios a-g: our operation for each, its description, and the body of its nth request.

use super::*;

pub(crate) const SELECTION: &str = "bsid externalIdstring reason submittedAt complete completeAt results parentBuildid parentRelationship rebuiltBuildid";

pub(crate) const STAMP: &str = "ssid branch revision repository codebase project createdAt";

pub(crate) const PATCH: &str = "patch { patchid level body author comment subdir }";

pub(crate) const REQUEST: &str =
    "buildrequestid builderid priority complete results submittedAt completeAt waitedFor";

/// Our operation for a scenario; the operation name is the scenario's letter, so
/// that `/metrics` counts its statements apart.
pub(crate) fn our_query(s: char) -> String {
    match s {
        'a' => format!("query a($id: Int!) {{ buildset(bsid: $id) {{ {SELECTION} sourcestamps {{ {STAMP} {PATCH} }} }} }}"),
        'b' => format!("query b {{ buildsets(first: 100, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} sourcestamps {{ {STAMP} {PATCH} }} }} }} }}"),
        'c' => format!("query c {{ buildsets(first: 20, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} sourcestamps {{ {STAMP} }} buildrequests {{ {REQUEST} }} }} }} }}"),
        'd' => format!("query d {{ buildsets(first: 20, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} properties {{ name value source }} sourcestamps {{ {STAMP} {PATCH} }} buildrequests {{ {REQUEST} builder {{ builderid name description }} builds {{ buildid number builderid buildrequestid stateString results startedAt completeAt }} }} }} }} }}"),
        'e' => format!("query e($branch: String!) {{ recentBuildsets(count: 50, branch: $branch) {{ {SELECTION} sourcestamps {{ {STAMP} }} }} }}"),
        'f' => "mutation f($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }".into(),
        'g' => "mutation g($b: Int!) { completeBuildset(bsid: $b, results: 0) { bsid } }".into(),
        _ => String::new(),
    }
}

pub(crate) fn describe(s: char) -> &'static str {
    match s {
        'a' => "a: one buildset + stamps + patch",
        'b' => "b: 100-page + stamps + patches",
        'c' => "c: 20-page + stamps + requests",
        'd' => "d: 20-page, everything nested",
        'e' => "e: recentBuildsets(count: 50, branch)",
        'f' => "f: addBuildset (new stamp)",
        'g' => "g: completeBuildset",
        _ => "?",
    }
}

/// The `n`th request of read scenario `scenario` to this server.
pub(crate) fn read_body(query: &str, scenario: char, d: &Data, n: u64) -> Value {
    let mut r = Lcg(n.wrapping_mul(7919) + 13);
    match scenario {
        'a' => {
            json!({"query": query, "operationName": "a", "variables": {"id": 1 + r.below(d.max_bsid.max(1) as u64) as i64}})
        }
        'e' => {
            json!({"query": query, "operationName": "e", "variables": {"branch": d.branches.get(r.below(d.branches.len() as u64) as usize).cloned().unwrap_or_default()}})
        }
        other => json!({"query": query, "operationName": other.to_string()}),
    }
}
