//! The scalar fields of each output type for the plain path (`fast.rs`), as the
//! resolvers in `types.rs` answer them; both paths are compared field by field in
//! tests/blackbox/test_fast.py.

use async_graphql::{ScalarType, Value};

use super::fast::Plain;
use super::types::{global_id, time, NodeKind};
use crate::store::{
    BuildRow, BuilderRow, BuildsetView, PatchRow, Property, RequestView, StampView,
};

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn maybe<T>(x: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    x.map_or(Value::Null, f)
}

fn when(t: chrono::DateTime<chrono::Utc>) -> Value {
    ScalarType::to_value(&time(t))
}

// The scalar fields of each type, as its resolvers above answer them; both paths
// are compared field by field in tests/blackbox/test_fast.py.

impl Plain for BuildsetView {
    fn scalar(&self, name: &str) -> Option<Value> {
        let r = &self.row;
        Some(match name {
            "id" => Value::String(global_id(NodeKind::Buildset, r.bsid).0),
            "bsid" => Value::from(r.bsid),
            "externalIdstring" => maybe(r.external_idstring.as_deref(), text),
            "reason" => maybe(r.reason.as_deref(), text),
            "submittedAt" => when(r.submitted_at),
            "complete" => Value::Boolean(r.complete),
            "completeAt" => maybe(r.complete_at, when),
            "results" => maybe(r.results, |x| Value::from(i32::from(x))),
            "parentBuildid" => maybe(r.parent_buildid, Value::from),
            "parentRelationship" => maybe(r.parent_relationship.as_deref(), text),
            "rebuiltBuildid" => maybe(r.rebuilt_buildid, Value::from),
            _ => return None,
        })
    }
}

impl Plain for StampView {
    fn scalar(&self, name: &str) -> Option<Value> {
        let r = &self.row;
        Some(match name {
            "id" => Value::String(global_id(NodeKind::SourceStamp, r.ssid).0),
            "ssid" => Value::from(r.ssid),
            "branch" => maybe(r.branch.as_deref(), text),
            "revision" => maybe(r.revision.as_deref(), text),
            "repository" => text(&r.repository),
            "codebase" => text(&r.codebase),
            "project" => text(&r.project),
            "createdAt" => when(r.created_at),
            _ => return None,
        })
    }
}

impl Plain for PatchRow {
    fn scalar(&self, name: &str) -> Option<Value> {
        Some(match name {
            "patchid" => Value::from(self.patchid),
            "level" => Value::from(self.level),
            "subdir" => maybe(self.subdir.as_deref(), text),
            "author" => text(&self.author),
            "comment" => text(&self.comment),
            // An undecodable body is an error with its path: the resolver's.
            "body" => Value::String(String::from_utf8_lossy(self.body.as_deref()?).into_owned()),
            _ => return None,
        })
    }
}

impl Plain for Property {
    fn scalar(&self, name: &str) -> Option<Value> {
        Some(match name {
            "name" => text(&self.name),
            "value" => match &self.value {
                serde_json::Value::Null => Value::Null,
                v => async_graphql::to_value(v).ok().unwrap_or_default(),
            },
            "source" => text(&self.source),
            _ => return None,
        })
    }
}

impl Plain for RequestView {
    fn scalar(&self, name: &str) -> Option<Value> {
        let r = &self.row;
        Some(match name {
            "id" => Value::String(global_id(NodeKind::BuildRequest, r.buildrequestid).0),
            "buildrequestid" => Value::from(r.buildrequestid),
            "bsid" => Value::from(r.bsid),
            "builderid" => Value::from(r.builderid),
            "priority" => Value::from(r.priority),
            "complete" => Value::Boolean(r.complete),
            "results" => maybe(r.results, |x| Value::from(i32::from(x))),
            "submittedAt" => when(r.submitted_at),
            "completeAt" => maybe(r.complete_at, when),
            "waitedFor" => Value::Boolean(r.waited_for),
            _ => return None,
        })
    }
}

impl Plain for BuildRow {
    fn scalar(&self, name: &str) -> Option<Value> {
        Some(match name {
            "buildid" => Value::from(self.buildid),
            "number" => Value::from(self.number),
            "builderid" => Value::from(self.builderid),
            "buildrequestid" => Value::from(self.buildrequestid),
            "stateString" => text(&self.state_string),
            "results" => maybe(self.results, Value::from),
            "startedAt" => when(self.started_at),
            "completeAt" => maybe(self.complete_at, when),
            _ => return None,
        })
    }
}

impl Plain for BuilderRow {
    fn scalar(&self, name: &str) -> Option<Value> {
        Some(match name {
            "id" => Value::String(global_id(NodeKind::Builder, self.builderid).0),
            "builderid" => Value::from(self.builderid),
            "name" => text(&self.name),
            "description" => maybe(self.description.as_deref(), text),
            _ => return None,
        })
    }
}
