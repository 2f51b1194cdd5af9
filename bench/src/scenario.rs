//! The scenarios a-g: our operation for each, its description, and the body of its nth request.

use super::*;

/// A scenario of the run: reads a-e, writes f-g.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scenario {
    /// One buildset with its stamps and patch.
    A,
    /// A page of 100 with stamps and patches.
    B,
    /// A page of 20 with stamps and build requests.
    C,
    /// A page of 20 with everything nested.
    D,
    /// `recentBuildsets(count: 50, branch)`.
    E,
    /// `addBuildset` with a new stamp.
    F,
    /// `addBuildset` with an existing stamp, by its ssid (listed before g, which it
    /// runs before: g completes what f and h added).
    H,
    /// `completeBuildset`.
    G,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 8] = [
        Scenario::A,
        Scenario::B,
        Scenario::C,
        Scenario::D,
        Scenario::E,
        Scenario::F,
        Scenario::H,
        Scenario::G,
    ];

    /// Its letter: the operation name, the command line's and the report's id.
    pub(crate) fn letter(self) -> char {
        match self {
            Scenario::A => 'a',
            Scenario::B => 'b',
            Scenario::C => 'c',
            Scenario::D => 'd',
            Scenario::E => 'e',
            Scenario::F => 'f',
            Scenario::G => 'g',
            Scenario::H => 'h',
        }
    }

    pub(crate) fn from_letter(c: char) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.letter() == c)
    }

    pub(crate) fn is_read(self) -> bool {
        self <= Scenario::E
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.letter())
    }
}

pub(crate) const SELECTION: &str = "bsid externalIdstring reason submittedAt complete completeAt results parentBuildid parentRelationship rebuiltBuildid";

pub(crate) const STAMP: &str = "ssid branch revision repository codebase project createdAt";

pub(crate) const PATCH: &str = "patch { patchid level body author comment subdir }";

pub(crate) const REQUEST: &str =
    "buildrequestid builderid priority complete results submittedAt completeAt waitedFor";

/// Our operation for a scenario; the operation name is the scenario's letter, so
/// that `/metrics` counts its statements apart.
pub(crate) fn our_query(s: Scenario) -> String {
    match s {
        Scenario::A => format!("query a($id: Int!) {{ buildset(bsid: $id) {{ {SELECTION} sourcestamps {{ {STAMP} {PATCH} }} }} }}"),
        Scenario::B => format!("query b {{ buildsets(first: 100, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} sourcestamps {{ {STAMP} {PATCH} }} }} }} }}"),
        Scenario::C => format!("query c {{ buildsets(first: 20, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} sourcestamps {{ {STAMP} }} buildrequests {{ {REQUEST} }} }} }} }}"),
        Scenario::D => format!("query d {{ buildsets(first: 20, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} properties {{ name value source }} sourcestamps {{ {STAMP} {PATCH} }} buildrequests {{ {REQUEST} builder {{ builderid name description }} builds {{ buildid number builderid buildrequestid stateString results startedAt completeAt }} }} }} }} }}"),
        Scenario::E => format!("query e($branch: String!) {{ recentBuildsets(count: 50, branch: $branch) {{ {SELECTION} sourcestamps {{ {STAMP} }} }} }}"),
        Scenario::F => "mutation f($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }".into(),
        Scenario::H => "mutation h($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }".into(),
        Scenario::G => "mutation g($b: Int!) { completeBuildset(bsid: $b, results: 0) { bsid } }".into(),
    }
}

pub(crate) fn describe(s: Scenario) -> &'static str {
    match s {
        Scenario::A => "a: one buildset + stamps + patch",
        Scenario::B => "b: 100-page + stamps + patches",
        Scenario::C => "c: 20-page + stamps + requests",
        Scenario::D => "d: 20-page, everything nested",
        Scenario::E => "e: recentBuildsets(count: 50, branch)",
        Scenario::F => "f: addBuildset (new stamp)",
        Scenario::G => "g: completeBuildset",
        Scenario::H => "h: addBuildset (existing ssid)",
    }
}

/// The `n`th request of read scenario `scenario` to this server.
pub(crate) fn read_body(query: &str, scenario: Scenario, d: &Data, n: u64) -> Value {
    let mut r = Lcg(n.wrapping_mul(7919) + 13);
    match scenario {
        Scenario::A => {
            json!({"query": query, "operationName": "a", "variables": {"id": 1 + r.below(d.max_bsid.max(1) as u64) as i64}})
        }
        Scenario::E => {
            json!({"query": query, "operationName": "e", "variables": {"branch": d.branches.get(r.below(d.branches.len() as u64) as usize).cloned().unwrap_or_default()}})
        }
        other => json!({"query": query, "operationName": other.to_string()}),
    }
}
