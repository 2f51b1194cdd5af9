//! The output types of the schema: thin views over the store's decoded types. Their
//! relations were loaded for the whole page by the store's page loader, as
//! `plan::relations` asked; a relation that is not there is a planning bug, reported
//! as INTERNAL (and caught by the planning test), never loaded one by one.

use async_graphql::{Context, Interface, Json, Object, Result, SimpleObject, ID};
use base64::Engine as _;

use super::fast::{Each, One};
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
}

impl NodeKind {
    fn name(self) -> &'static str {
        match self {
            NodeKind::Buildset => "Buildset",
            NodeKind::SourceStamp => "SourceStamp",
            NodeKind::BuildRequest => "BuildRequest",
            NodeKind::Builder => "Builder",
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
}

/// A set of build requests submitted together by a scheduler, with the sourcestamps
/// and properties they share.
#[Object(name = "Buildset")]
impl BuildsetView {
    /// Globally unique opaque id.
    async fn id(&self) -> ID {
        global_id(NodeKind::Buildset, self.row.bsid)
    }
    /// Buildbot's buildset id.
    async fn bsid(&self) -> i32 {
        self.row.bsid
    }
    /// An identifier given by the submitter, e.g. a change-request id.
    async fn external_idstring(&self) -> Option<&str> {
        self.row.external_idstring.as_deref()
    }
    /// Why the buildset was submitted.
    async fn reason(&self) -> Option<&str> {
        self.row.reason.as_deref()
    }
    /// When it was submitted (UTC).
    async fn submitted_at(&self) -> DateTime {
        time(self.row.submitted_at)
    }
    /// Whether all its build requests are done.
    async fn complete(&self) -> bool {
        self.row.complete
    }
    /// When it was completed (UTC); null while incomplete.
    async fn complete_at(&self) -> Option<DateTime> {
        self.row.complete_at.map(time)
    }
    /// Buildbot result code (0 SUCCESS, 1 WARNINGS, 2 FAILURE, 3 SKIPPED, 4 EXCEPTION,
    /// 5 RETRY, 6 CANCELLED); null while incomplete.
    async fn results(&self) -> Option<i32> {
        self.row.results.map(i32::from)
    }
    /// The build that triggered this buildset, if any.
    async fn parent_buildid(&self) -> Option<i32> {
        self.row.parent_buildid
    }
    /// How this buildset relates to its parent build.
    async fn parent_relationship(&self) -> Option<&str> {
        self.row.parent_relationship.as_deref()
    }
    /// The build this buildset rebuilds, if any.
    async fn rebuilt_buildid(&self) -> Option<i32> {
        self.row.rebuilt_buildid
    }
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

/// A nested list as it goes into the answer, charged to the operation's bound
/// (--max-response-bytes): the loaders read each row once, but a selection that
/// goes back up (`buildrequests { buildset { buildrequests } }`) repeats them in
/// the answer, a thousandfold per level for a buildset of 1,000 requests.
fn listed<'a, T>(ctx: &Context<'_>, items: &'a [T]) -> Result<&'a [T]> {
    super::StoreResultExt::gql(crate::store::tag::charge_items(items.len()), ctx)?;
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

/// A description of source code to build: repository, branch, revision, and an
/// optional patch on top.
#[Object(name = "SourceStamp")]
impl StampView {
    /// Globally unique opaque id.
    async fn id(&self) -> ID {
        global_id(NodeKind::SourceStamp, self.row.ssid)
    }
    /// Buildbot's sourcestamp id.
    async fn ssid(&self) -> i32 {
        self.row.ssid
    }
    /// The branch, or null for the default branch.
    async fn branch(&self) -> Option<&str> {
        self.row.branch.as_deref()
    }
    /// The revision, or null for the latest.
    async fn revision(&self) -> Option<&str> {
        self.row.revision.as_deref()
    }
    /// The repository URL ('' when not given).
    async fn repository(&self) -> &str {
        &self.row.repository
    }
    /// The codebase name ('' when not given).
    async fn codebase(&self) -> &str {
        &self.row.codebase
    }
    /// The project name ('' when not given).
    async fn project(&self) -> &str {
        &self.row.project
    }
    /// When the sourcestamp was first stored (UTC).
    async fn created_at(&self) -> DateTime {
        time(self.row.created_at)
    }
    /// The patch applied on top of the revision, if any.
    async fn patch(&self, ctx: &Context<'_>) -> Result<Option<One<'_, PatchRow>>> {
        match &self.patch {
            Some(p) => Ok(p.as_ref().map(One::Ref)),
            None => not_loaded(ctx, "patches"),
        }
    }
}

/// A patch applied on top of a sourcestamp's revision.
#[Object(name = "Patch")]
impl PatchRow {
    /// Buildbot's patch id.
    async fn patchid(&self) -> i32 {
        self.patchid
    }
    /// The strip level (`patch -p<level>`).
    async fn level(&self) -> i32 {
        self.level
    }
    /// The subdirectory the patch applies in, if any.
    async fn subdir(&self) -> Option<&str> {
        self.subdir.as_deref()
    }
    /// Who wrote the patch.
    async fn author(&self) -> &str {
        &self.author
    }
    /// What the patch is for.
    async fn comment(&self) -> &str {
        &self.comment
    }
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

/// A buildset property: a JSON value and where it came from.
#[Object(name = "Property")]
impl Property {
    /// The property name.
    async fn name(&self) -> &str {
        &self.name
    }
    /// The value, exactly as stored (any JSON).
    async fn value(&self) -> Option<Json<&serde_json::Value>> {
        match &self.value {
            serde_json::Value::Null => None,
            v => Some(Json(v)),
        }
    }
    /// What set the property (e.g. the scheduler's name).
    async fn source(&self) -> &str {
        &self.source
    }
}

/// A request to build a buildset on one builder.
#[Object(name = "BuildRequest")]
impl RequestView {
    /// Globally unique opaque id.
    async fn id(&self) -> ID {
        global_id(NodeKind::BuildRequest, self.row.buildrequestid)
    }
    /// Buildbot's build request id.
    async fn buildrequestid(&self) -> i32 {
        self.row.buildrequestid
    }
    /// The id of its buildset.
    async fn bsid(&self) -> i32 {
        self.row.bsid
    }
    /// Its buildset.
    async fn buildset(&self, ctx: &Context<'_>) -> Result<One<'_, BuildsetView>> {
        match &self.buildset {
            Some(b) => Ok(One::Ref(b)),
            None => not_loaded(ctx, "a build request's buildset"),
        }
    }
    /// The id of the builder it is for.
    async fn builderid(&self) -> i32 {
        self.row.builderid
    }
    /// The builder it is for.
    async fn builder(&self, ctx: &Context<'_>) -> Result<One<'_, BuilderRow>> {
        match &self.builder {
            Some(b) => Ok(One::Ref(b)),
            None => not_loaded(ctx, "builders"),
        }
    }
    /// Scheduling priority; higher runs first.
    async fn priority(&self) -> i32 {
        self.row.priority
    }
    /// Whether the request is done.
    async fn complete(&self) -> bool {
        self.row.complete
    }
    /// Buildbot result code; null while incomplete.
    async fn results(&self) -> Option<i32> {
        self.row.results.map(i32::from)
    }
    /// When it was submitted (UTC).
    async fn submitted_at(&self) -> DateTime {
        time(self.row.submitted_at)
    }
    /// When it completed (UTC); null while incomplete.
    async fn complete_at(&self) -> Option<DateTime> {
        self.row.complete_at.map(time)
    }
    /// Whether the submitter waits for its result.
    async fn waited_for(&self) -> bool {
        self.row.waited_for
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

/// A build Buildbot ran for a build request (its `builds` table).
#[Object(name = "Build")]
impl BuildRow {
    /// Buildbot's build id.
    async fn buildid(&self) -> i32 {
        self.buildid
    }
    /// The build's number on its builder.
    async fn number(&self) -> i32 {
        self.number
    }
    /// The builder it ran on.
    async fn builderid(&self) -> i32 {
        self.builderid
    }
    /// The build request it ran for.
    async fn buildrequestid(&self) -> i32 {
        self.buildrequestid
    }
    /// Buildbot's one-line state ("building", "build successful", …).
    async fn state_string(&self) -> &str {
        &self.state_string
    }
    /// Buildbot result code; null while it runs.
    async fn results(&self) -> Option<i32> {
        self.results
    }
    /// When it started (UTC).
    async fn started_at(&self) -> DateTime {
        time(self.started_at)
    }
    /// When it finished (UTC); null while it runs.
    async fn complete_at(&self) -> Option<DateTime> {
        self.complete_at.map(time)
    }
}

/// A builder: the thing that runs builds of one kind.
#[Object(name = "Builder")]
impl BuilderRow {
    /// Globally unique opaque id.
    async fn id(&self) -> ID {
        global_id(NodeKind::Builder, self.builderid)
    }
    /// Buildbot's builder id.
    async fn builderid(&self) -> i32 {
        self.builderid
    }
    /// The builder's unique name.
    async fn name(&self) -> &str {
        &self.name
    }
    /// A human description, if any.
    async fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

/// The build request created for one builder by `addBuildset`.
#[derive(SimpleObject, Clone, Debug)]
pub struct BuilderRequestId {
    /// The builder.
    pub builderid: i32,
    /// The build request created for it.
    pub buildrequestid: i32,
}
