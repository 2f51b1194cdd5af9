//! The output types of the schema: thin views over the store's decoded types. Their
//! relations were loaded for the whole page by the store's page loader, as
//! `plan::relations` asked; a relation that is not there is a planning bug, reported
//! as INTERNAL (and caught by the planning test), never loaded one by one.

use async_graphql::{Context, Interface, Json, Object, Result, SimpleObject, ID};
use base64::Engine as _;

use super::fast::{Each, One};
use super::fields::output_type;
use super::scalars::DateTime;
use crate::error::{internal, RequestId};
use crate::store::{
    BuildRow, BuilderRow, BuildsetView, PatchRow, Property, RequestView, SchemaMode, StampView,
};

/// What a list field multiplies its items' complexity by: about how many items a
/// parent has in Buildbot's use (1-3 sourcestamps, a few properties, a build request
/// per builder, a build or two per request), so that a query's complexity follows
/// the rows it loads. A full page of 100 buildsets with every relation weighs
/// about 12,000, within the default `--max-complexity` of 20,000.
pub const STAMPS_WEIGHT: usize = 2;
pub const PROPERTIES_WEIGHT: usize = 4;
pub const REQUESTS_WEIGHT: usize = 2;
pub const BUILDS_WEIGHT: usize = 2;
/// Builders are listed whole, without paging.
pub const BUILDERS_WEIGHT: usize = 100;

/// The complexity of a list field: one for the field, `weight` for each item's
/// selection (a list of scalars counts one per item).
pub fn weighted(weight: usize, child_complexity: usize) -> usize {
    weight
        .saturating_mul(child_complexity.max(1))
        .saturating_add(1)
}

pub(super) fn time(t: chrono::DateTime<chrono::Utc>) -> DateTime {
    DateTime::Valid(t)
}

/// The error for a relation the plan did not load.
fn not_loaded<T>(ctx: &Context<'_>, what: &str) -> Result<T> {
    Err(internal(
        &format!("{what} were not planned for loading"),
        ctx.data_opt::<RequestId>(),
    ))
}

/// The kinds of object a global id can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Buildset,
    SourceStamp,
    BuildRequest,
    Builder,
    Build,
    Patch,
}

impl NodeKind {
    fn name(self) -> &'static str {
        match self {
            NodeKind::Buildset => "Buildset",
            NodeKind::SourceStamp => "SourceStamp",
            NodeKind::BuildRequest => "BuildRequest",
            NodeKind::Builder => "Builder",
            NodeKind::Build => "Build",
            NodeKind::Patch => "Patch",
        }
    }
}

/// The opaque global id of an object: base64 of `Type:id`.
pub fn global_id(kind: NodeKind, id: i32) -> ID {
    ID(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.name())))
}

/// Reads a global id back; `None` when it is not one of ours.
pub fn parse_global_id(id: &str) -> Option<(NodeKind, i32)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (kind, n) = text.split_once(':')?;
    let kind = [
        NodeKind::Buildset,
        NodeKind::SourceStamp,
        NodeKind::BuildRequest,
        NodeKind::Builder,
        NodeKind::Build,
        NodeKind::Patch,
    ]
    .into_iter()
    .find(|k| k.name() == kind)?;
    Some((kind, n.parse().ok()?))
}

/// An object with a globally unique, opaque id, resolvable through `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Globally unique opaque id."))]
pub enum Node {
    Buildset(BuildsetView),
    SourceStamp(StampView),
    BuildRequest(RequestView),
    Builder(BuilderRow),
    Build(BuildRow),
    Patch(PatchRow),
}

output_type! {
    #[Object(name = "Buildset")]
    /// A set of build requests submitted together by a scheduler, with the sourcestamps
    /// and properties they share.
    impl BuildsetView;
    scalars {
        /// Globally unique opaque id.
        "id" id: ID = |b| global_id(NodeKind::Buildset, b.row.bsid);
        /// Buildbot's buildset id.
        "bsid" bsid: i32 = |b| b.row.bsid;
        /// An identifier given by the submitter, e.g. a change-request id.
        "externalIdstring" external_idstring: Option<&str> = |b| b.row.external_idstring.as_deref();
        /// Why the buildset was submitted.
        "reason" reason: Option<&str> = |b| b.row.reason.as_deref();
        /// When it was submitted (UTC).
        "submittedAt" submitted_at: DateTime = |b| time(b.row.submitted_at);
        /// Whether all its build requests are done.
        "complete" complete: bool = |b| b.row.complete;
        /// When it was completed (UTC); null while incomplete.
        "completeAt" complete_at: Option<DateTime> = |b| b.row.complete_at.map(time);
        /// Buildbot result code (0 SUCCESS, 1 WARNINGS, 2 FAILURE, 3 SKIPPED, 4 EXCEPTION,
        /// 5 RETRY, 6 CANCELLED); null while incomplete.
        "results" results: Option<i32> = |b| b.row.results.map(i32::from);
        /// The build that triggered this buildset, if any.
        "parentBuildid" parent_buildid: Option<i32> = |b| b.row.parent_buildid;
        /// How this buildset relates to its parent build.
        "parentRelationship" parent_relationship: Option<&str> = |b| b.row.parent_relationship.as_deref();
        /// The build this buildset rebuilds, if any.
        "rebuiltBuildid" rebuilt_buildid: Option<i32> = |b| b.row.rebuilt_buildid;
    }
    fields {
        /// Ids of its sourcestamps, in the order given when it was added.
        #[graphql(complexity = "weighted(STAMPS_WEIGHT, child_complexity)")]
        async fn sourcestamp_ids(&self, ctx: &Context<'_>) -> Result<Vec<i32>> {
            let stamps = listed(ctx, self.stamps(ctx)?)?;
            Ok(stamps.iter().map(|s| s.row.ssid).collect())
        }
        /// Its sourcestamps, in the order given when it was added.
        #[graphql(complexity = "weighted(STAMPS_WEIGHT, child_complexity)")]
        async fn sourcestamps(&self, ctx: &Context<'_>) -> Result<Each<'_, StampView>> {
            listed(ctx, self.stamps(ctx)?).map(Each::Slice)
        }
        /// Its properties, sorted by name.
        #[graphql(complexity = "weighted(PROPERTIES_WEIGHT, child_complexity)")]
        async fn properties(&self, ctx: &Context<'_>) -> Result<Each<'_, Property>> {
            listed(ctx, self.props(ctx)?).map(Each::Slice)
        }
        /// One property by name, or null.
        async fn property(&self, ctx: &Context<'_>, name: String) -> Result<Option<&Property>> {
            Ok(self.props(ctx)?.iter().find(|p| p.name == name))
        }
        /// Its build requests, one per builder, by id.
        #[graphql(complexity = "weighted(REQUESTS_WEIGHT, child_complexity)")]
        async fn buildrequests(&self, ctx: &Context<'_>) -> Result<Each<'_, RequestView>> {
            match &self.requests {
                Some(r) => listed(ctx, r).map(Each::Slice),
                None => not_loaded(ctx, "build requests"),
            }
        }
    }
}

/// A nested list as it goes into the answer, charged to the operation's bound
/// (--max-response-bytes): the loaders read each row once, but a selection that
/// goes back up (`buildrequests { buildset { buildrequests } }`) repeats them in
/// the answer, a thousandfold per level for a buildset of 1,000 requests.
fn listed<'a, T>(ctx: &Context<'_>, items: &'a [T]) -> Result<&'a [T]> {
    super::StoreResultExt::gql(
        super::operation(ctx).budget().charge_items(items.len()),
        ctx,
    )?;
    Ok(items)
}

impl BuildsetView {
    fn stamps(&self, ctx: &Context<'_>) -> Result<&[StampView]> {
        match &self.stamps {
            Some(s) => Ok(s),
            None => not_loaded(ctx, "sourcestamps"),
        }
    }

    fn props(&self, ctx: &Context<'_>) -> Result<&[Property]> {
        match &self.props {
            Some(p) => Ok(p),
            None => not_loaded(ctx, "properties"),
        }
    }
}

output_type! {
    #[Object(name = "SourceStamp")]
    /// A description of source code to build: repository, branch, revision, and an
    /// optional patch on top.
    impl StampView;
    scalars {
        /// Globally unique opaque id.
        "id" id: ID = |s| global_id(NodeKind::SourceStamp, s.row.ssid);
        /// Buildbot's sourcestamp id.
        "ssid" ssid: i32 = |s| s.row.ssid;
        /// The branch, or null for the default branch.
        "branch" branch: Option<&str> = |s| s.row.branch.as_deref();
        /// The revision, or null for the latest.
        "revision" revision: Option<&str> = |s| s.row.revision.as_deref();
        /// The repository URL ('' when not given).
        "repository" repository: &str = |s| &s.row.repository;
        /// The codebase name ('' when not given).
        "codebase" codebase: &str = |s| &s.row.codebase;
        /// The project name ('' when not given).
        "project" project: &str = |s| &s.row.project;
        /// When the sourcestamp was first stored (UTC).
        "createdAt" created_at: DateTime = |s| time(s.row.created_at);
    }
    fields {
        /// The patch applied on top of the revision, if any.
        async fn patch(&self, ctx: &Context<'_>) -> Result<Option<One<'_, PatchRow>>> {
            match &self.patch {
                Some(p) => Ok(p.as_ref().map(One::Ref)),
                None => not_loaded(ctx, "patches"),
            }
        }
    }
}

output_type! {
    #[Object(name = "Patch")]
    /// A patch applied on top of a sourcestamp's revision.
    impl PatchRow;
    scalars {
        /// Globally unique opaque id.
        "id" id: ID = |p| global_id(NodeKind::Patch, p.patchid);
        /// Buildbot's patch id.
        "patchid" patchid: i32 = |p| p.patchid;
        /// The strip level (`patch -p<level>`).
        "level" level: i32 = |p| p.level;
        /// The subdirectory the patch applies in, if any.
        "subdir" subdir: Option<&str> = |p| p.subdir.as_deref();
        /// Who wrote the patch.
        "author" author: &str = |p| &p.author;
        /// What the patch is for.
        "comment" comment: &str = |p| &p.comment;
    }
    fields {
        /// The patch text (bytes that are not UTF-8 are shown as U+FFFD).
        async fn body(&self, ctx: &Context<'_>) -> Result<String> {
            match &self.body {
                Some(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                None => Err(internal(
                    &format!("the stored body of patch {} is not base64", self.patchid),
                    ctx.data_opt::<RequestId>(),
                )),
            }
        }
    }
}

output_type! {
    #[Object(name = "Property")]
    /// A buildset property: a JSON value and where it came from.
    impl Property;
    scalars {
        /// The property name.
        "name" name: &str = |p| &p.name;
        /// The value, exactly as stored (any JSON).
        "value" value: Option<Json<&serde_json::Value>> = |p| match &p.value {
            serde_json::Value::Null => None,
            v => Some(Json(v)),
        };
        /// What set the property (e.g. the scheduler's name).
        "source" source: &str = |p| &p.source;
    }
    fields {}
}

output_type! {
    #[Object(name = "BuildRequest")]
    /// A request to build a buildset on one builder.
    impl RequestView;
    scalars {
        /// Globally unique opaque id.
        "id" id: ID = |r| global_id(NodeKind::BuildRequest, r.row.buildrequestid);
        /// Buildbot's build request id.
        "buildrequestid" buildrequestid: i32 = |r| r.row.buildrequestid;
        /// The id of its buildset.
        "bsid" bsid: i32 = |r| r.row.bsid;
        /// The id of the builder it is for.
        "builderid" builderid: i32 = |r| r.row.builderid;
        /// Scheduling priority; higher runs first.
        "priority" priority: i32 = |r| r.row.priority;
        /// Whether the request is done.
        "complete" complete: bool = |r| r.row.complete;
        /// Buildbot result code; null while incomplete.
        "results" results: Option<i32> = |r| r.row.results.map(i32::from);
        /// When it was submitted (UTC).
        "submittedAt" submitted_at: DateTime = |r| time(r.row.submitted_at);
        /// When it completed (UTC); null while incomplete.
        "completeAt" complete_at: Option<DateTime> = |r| r.row.complete_at.map(time);
        /// Whether the submitter waits for its result.
        "waitedFor" waited_for: bool = |r| r.row.waited_for;
    }
    fields {
        /// Its buildset.
        async fn buildset(&self, ctx: &Context<'_>) -> Result<One<'_, BuildsetView>> {
            match &self.buildset {
                Some(b) => Ok(One::Ref(b)),
                None => not_loaded(ctx, "a build request's buildset"),
            }
        }
        /// The builder it is for.
        async fn builder(&self, ctx: &Context<'_>) -> Result<One<'_, BuilderRow>> {
            match &self.builder {
                Some(b) => Ok(One::Ref(b)),
                None => not_loaded(ctx, "builders"),
            }
        }
        /// The builds Buildbot ran for it, oldest first (a retried request has several).
        /// Null on a standalone database, which has no builds.
        #[graphql(complexity = "weighted(BUILDS_WEIGHT, child_complexity)")]
        async fn builds(&self, ctx: &Context<'_>) -> Result<Option<Each<'_, BuildRow>>> {
            match &self.builds {
                Some(b) => listed(ctx, b).map(|b| Some(Each::Slice(b))),
                None if super::app(ctx)?.store.mode() == SchemaMode::Standalone => Ok(None),
                None => not_loaded(ctx, "builds"),
            }
        }
    }
}

output_type! {
    #[Object(name = "Build")]
    /// A build Buildbot ran for a build request (its `builds` table).
    impl BuildRow;
    scalars {
        /// Globally unique opaque id.
        "id" id: ID = |b| global_id(NodeKind::Build, b.buildid);
        /// Buildbot's build id.
        "buildid" buildid: i32 = |b| b.buildid;
        /// The build's number on its builder.
        "number" number: i32 = |b| b.number;
        /// The builder it ran on.
        "builderid" builderid: i32 = |b| b.builderid;
        /// The build request it ran for.
        "buildrequestid" buildrequestid: i32 = |b| b.buildrequestid;
        /// Buildbot's one-line state ("building", "build successful", …).
        "stateString" state_string: &str = |b| &b.state_string;
        /// Buildbot result code; null while it runs.
        "results" results: Option<i32> = |b| b.results;
        /// When it started (UTC).
        "startedAt" started_at: DateTime = |b| time(b.started_at);
        /// When it finished (UTC); null while it runs.
        "completeAt" complete_at: Option<DateTime> = |b| b.complete_at.map(time);
    }
    fields {}
}

output_type! {
    #[Object(name = "Builder")]
    /// A builder: the thing that runs builds of one kind.
    impl BuilderRow;
    scalars {
        /// Globally unique opaque id.
        "id" id: ID = |b| global_id(NodeKind::Builder, b.builderid);
        /// Buildbot's builder id.
        "builderid" builderid: i32 = |b| b.builderid;
        /// The builder's unique name.
        "name" name: &str = |b| &b.name;
        /// A human description, if any.
        "description" description: Option<&str> = |b| b.description.as_deref();
    }
    fields {}
}

/// The build request created for one builder by `addBuildset`.
#[derive(SimpleObject, Clone, Debug)]
pub struct BuilderRequestId {
    /// The builder.
    pub builderid: i32,
    /// The build request created for it.
    pub buildrequestid: i32,
}
