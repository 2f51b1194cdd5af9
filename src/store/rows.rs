//! What the store reads, decoded once from Buildbot's encodings: booleans instead of
//! integer flags, no result until complete (Buildbot stores -1), times as UTC
//! date-times, patch bodies as bytes. Nothing above the store sees a table row.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use entity::{builders, buildrequests, builds, buildsets, patches, sourcestamps};

/// Buildbot's integer epoch seconds as a time (an i32 is always in range).
pub(crate) fn time(epoch: i32) -> DateTime<Utc> {
    DateTime::from_timestamp(epoch.into(), 0).unwrap_or_default()
}

/// A buildset's own columns.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildsetRow {
    pub bsid: i32,
    pub external_idstring: Option<String>,
    pub reason: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub complete: bool,
    pub complete_at: Option<DateTime<Utc>>,
    /// Buildbot's result code; `None` while incomplete.
    pub results: Option<i16>,
    pub parent_buildid: Option<i32>,
    pub parent_relationship: Option<String>,
    pub rebuilt_buildid: Option<i32>,
}

impl From<buildsets::Model> for BuildsetRow {
    fn from(m: buildsets::Model) -> Self {
        let complete = m.complete != 0;
        BuildsetRow {
            bsid: m.id,
            external_idstring: m.external_idstring,
            reason: m.reason,
            submitted_at: time(m.submitted_at),
            complete,
            complete_at: m.complete_at.map(time),
            results: m.results.filter(|_| complete),
            parent_buildid: m.parent_buildid,
            parent_relationship: m.parent_relationship,
            rebuilt_buildid: m.rebuilt_buildid,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceStampRow {
    pub ssid: i32,
    pub branch: Option<String>,
    pub revision: Option<String>,
    pub repository: String,
    pub codebase: String,
    pub project: String,
    pub created_at: DateTime<Utc>,
    pub patchid: Option<i32>,
}

impl From<sourcestamps::Model> for SourceStampRow {
    fn from(m: sourcestamps::Model) -> Self {
        SourceStampRow {
            ssid: m.id,
            branch: m.branch,
            revision: m.revision,
            repository: m.repository,
            codebase: m.codebase,
            project: m.project,
            created_at: time(m.created_at),
            patchid: m.patchid,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PatchRow {
    pub patchid: i32,
    pub level: i32,
    pub subdir: Option<String>,
    pub author: String,
    pub comment: String,
    /// The patch text, decoded from Buildbot's base64; `None` when the stored text
    /// is not base64 (logged when read).
    pub body: Option<Vec<u8>>,
}

impl From<patches::Model> for PatchRow {
    fn from(m: patches::Model) -> Self {
        let body = base64::engine::general_purpose::STANDARD
            .decode(m.patch_base64.trim())
            .map_err(|e| {
                tracing::error!(patchid = m.id, error = %e, "a stored patch body is not base64");
            })
            .ok();
        PatchRow {
            patchid: m.id,
            level: m.patchlevel,
            subdir: m.subdir,
            author: m.patch_author,
            comment: m.patch_comment,
            body,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BuildRequestRow {
    pub buildrequestid: i32,
    pub bsid: i32,
    pub builderid: i32,
    pub priority: i32,
    pub complete: bool,
    /// Buildbot's result code; `None` while incomplete.
    pub results: Option<i16>,
    pub submitted_at: DateTime<Utc>,
    pub complete_at: Option<DateTime<Utc>>,
    pub waited_for: bool,
}

impl From<buildrequests::Model> for BuildRequestRow {
    fn from(m: buildrequests::Model) -> Self {
        let complete = m.complete.unwrap_or(0) != 0;
        BuildRequestRow {
            buildrequestid: m.id,
            bsid: m.buildsetid,
            builderid: m.builderid,
            priority: m.priority,
            complete,
            results: m.results.filter(|_| complete),
            submitted_at: time(m.submitted_at),
            complete_at: m.complete_at.map(time),
            waited_for: m.waited_for.unwrap_or(0) != 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BuilderRow {
    pub builderid: i32,
    pub name: String,
    pub description: Option<String>,
}

impl From<builders::Model> for BuilderRow {
    fn from(m: builders::Model) -> Self {
        BuilderRow {
            builderid: m.id,
            name: m.name,
            description: m.description,
        }
    }
}

/// Converts a list of rows.
pub(crate) fn all<M, R: From<M>>(models: Vec<M>) -> Vec<R> {
    models.into_iter().map(R::from).collect()
}

/// A build of a build request (Buildbot's `builds`, attached mode only).
#[derive(Clone, Debug, PartialEq)]
pub struct BuildRow {
    pub buildid: i32,
    pub number: i32,
    pub builderid: i32,
    pub buildrequestid: i32,
    pub started_at: DateTime<Utc>,
    pub complete_at: Option<DateTime<Utc>>,
    pub state_string: String,
    /// Buildbot's result code; `None` while the build runs.
    pub results: Option<i32>,
}

impl From<builds::Model> for BuildRow {
    fn from(m: builds::Model) -> Self {
        BuildRow {
            buildid: m.id,
            number: m.number,
            builderid: m.builderid,
            buildrequestid: m.buildrequestid,
            started_at: time(m.started_at),
            complete_at: m.complete_at.map(time),
            state_string: m.state_string,
            results: m.results,
        }
    }
}
