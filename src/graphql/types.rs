//! The output types of the schema. Relations are filled in for a whole page by
//! `load`; a resolver only falls back to loading for itself when a plan missed it.

use std::borrow::Cow;

use async_graphql::{Context, Interface, Json, Object, Result, SimpleObject, ID};
use base64::Engine as _;
use entity::{builders, buildrequests, buildsets, patches, sourcestamps};
use tokio::sync::OnceCell;

use super::load::{self, Plan};
use super::scalars::DateTime;
use super::{app, StoreResultExt};
use crate::store;

fn time(epoch: i32) -> DateTime {
    DateTime::from_epoch(epoch)
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
    Buildset(Buildset),
    SourceStamp(SourceStamp),
    BuildRequest(BuildRequest),
    Builder(Builder),
}

/// A set of build requests submitted together by a scheduler, with the sourcestamps
/// and properties they share.
#[derive(Clone, Debug)]
pub struct Buildset {
    pub row: buildsets::Model,
    /// Relations, filled for the whole page by `load` (or, when a plan missed one, by
    /// the field itself on first use).
    pub stamps: OnceCell<Vec<SourceStamp>>,
    pub props: OnceCell<Vec<Property>>,
    pub requests: OnceCell<Vec<BuildRequest>>,
}

impl Buildset {
    /// Loads every relation for this buildset alone and fills the cells still empty:
    /// the fallback when the page plan did not foresee a field, done once for all
    /// three relations.
    async fn fill(&self, ctx: &Context<'_>) -> Result<()> {
        let plan = Plan {
            stamps: true,
            patches: true,
            props: true,
            requests: true,
            builders: true,
            request_buildset: None,
        };
        let mut loaded = load::buildsets(ctx, vec![self.row.clone()], &plan).await?;
        let mut own = loaded.pop().ok_or("buildset vanished")?;
        // A cell that a concurrent field filled meanwhile keeps its value.
        let _ = self.stamps.set(own.stamps.take().unwrap_or_default());
        let _ = self.props.set(own.props.take().unwrap_or_default());
        let _ = self.requests.set(own.requests.take().unwrap_or_default());
        Ok(())
    }

    /// A relation's cell, filled on first use when the plan left it empty.
    async fn cell<'a, T: 'a>(
        &'a self,
        ctx: &Context<'_>,
        cell: impl Fn(&'a Self) -> &'a OnceCell<Vec<T>>,
    ) -> Result<&'a [T]> {
        if cell(self).get().is_none() {
            self.fill(ctx).await?;
        }
        Ok(cell(self).get().map(Vec::as_slice).unwrap_or_default())
    }

    async fn stamps(&self, ctx: &Context<'_>) -> Result<&[SourceStamp]> {
        self.cell(ctx, |b| &b.stamps).await
    }

    async fn props(&self, ctx: &Context<'_>) -> Result<&[Property]> {
        self.cell(ctx, |b| &b.props).await
    }

    async fn requests(&self, ctx: &Context<'_>) -> Result<&[BuildRequest]> {
        self.cell(ctx, |b| &b.requests).await
    }
}

/// A set of build requests submitted together by a scheduler, with the sourcestamps
/// and properties they share.
#[Object]
impl Buildset {
    /// Globally unique opaque id.
    async fn id(&self) -> ID {
        global_id(NodeKind::Buildset, self.row.id)
    }
    /// Buildbot's buildset id.
    async fn bsid(&self) -> i32 {
        self.row.id
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
        self.row.complete != 0
    }
    /// When it was completed (UTC); null while incomplete.
    async fn complete_at(&self) -> Option<DateTime> {
        self.row.complete_at.map(time)
    }
    /// Buildbot result code (0 SUCCESS, 1 WARNINGS, 2 FAILURE, 3 SKIPPED, 4 EXCEPTION,
    /// 5 RETRY, 6 CANCELLED); null while incomplete.
    async fn results(&self) -> Option<i32> {
        if self.row.complete == 0 {
            return None;
        }
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
    async fn sourcestamp_ids(&self, ctx: &Context<'_>) -> Result<Vec<i32>> {
        Ok(self.stamps(ctx).await?.iter().map(|s| s.row.id).collect())
    }
    /// Its sourcestamps, in the order given when it was added.
    async fn sourcestamps(&self, ctx: &Context<'_>) -> Result<&[SourceStamp]> {
        self.stamps(ctx).await
    }
    /// Its properties, sorted by name.
    async fn properties(&self, ctx: &Context<'_>) -> Result<&[Property]> {
        self.props(ctx).await
    }
    /// One property by name, or null.
    async fn property(&self, ctx: &Context<'_>, name: String) -> Result<Option<&Property>> {
        Ok(self.props(ctx).await?.iter().find(|p| p.0.name == name))
    }
    /// Its build requests, one per builder, by id.
    async fn buildrequests(&self, ctx: &Context<'_>) -> Result<&[BuildRequest]> {
        self.requests(ctx).await
    }
}

/// A description of source code to build: repository, branch, revision, and an
/// optional patch on top.
#[derive(Clone, Debug)]
pub struct SourceStamp {
    pub row: sourcestamps::Model,
    /// `None` when not loaded; `Some(None)` when there is no patch.
    pub patch: Option<Option<Patch>>,
}

/// A description of source code to build: repository, branch, revision, and an
/// optional patch on top.
#[Object]
impl SourceStamp {
    /// Globally unique opaque id.
    async fn id(&self) -> ID {
        global_id(NodeKind::SourceStamp, self.row.id)
    }
    /// Buildbot's sourcestamp id.
    async fn ssid(&self) -> i32 {
        self.row.id
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
    async fn patch(&self, ctx: &Context<'_>) -> Result<Option<Patch>> {
        Ok(match &self.patch {
            Some(p) => p.clone(),
            None => match self.row.patchid {
                None => None,
                Some(id) => store::read::patches_by_ids(&app(ctx)?.db, &[id])
                    .await
                    .gql(ctx)?
                    .pop()
                    .map(Patch),
            },
        })
    }
}

/// A patch applied on top of a sourcestamp's revision.
#[derive(Clone, Debug)]
pub struct Patch(pub patches::Model);

/// A patch applied on top of a sourcestamp's revision.
#[Object]
impl Patch {
    /// Buildbot's patch id.
    async fn patchid(&self) -> i32 {
        self.0.id
    }
    /// The strip level (`patch -p<level>`).
    async fn level(&self) -> i32 {
        self.0.patchlevel
    }
    /// The subdirectory the patch applies in, if any.
    async fn subdir(&self) -> Option<&str> {
        self.0.subdir.as_deref()
    }
    /// Who wrote the patch.
    async fn author(&self) -> &str {
        &self.0.patch_author
    }
    /// What the patch is for.
    async fn comment(&self) -> &str {
        &self.0.patch_comment
    }
    /// The patch text (decoded from Buildbot's base64; bytes that are not UTF-8 are
    /// shown as U+FFFD).
    async fn body(&self) -> String {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.0.patch_base64.trim())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A buildset property: a JSON value and where it came from.
#[derive(Clone, Debug)]
pub struct Property(pub store::Property);

/// A buildset property: a JSON value and where it came from.
#[Object]
impl Property {
    /// The property name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The value, exactly as stored (any JSON).
    async fn value(&self) -> Option<Json<serde_json::Value>> {
        match &self.0.value {
            serde_json::Value::Null => None,
            v => Some(Json(v.clone())),
        }
    }
    /// What set the property (e.g. the scheduler's name).
    async fn source(&self) -> &str {
        &self.0.source
    }
}

/// A request to build a buildset on one builder.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    pub row: buildrequests::Model,
    pub builder: Option<Builder>,
    pub buildset: Option<Box<Buildset>>,
}

/// A request to build a buildset on one builder.
#[Object]
impl BuildRequest {
    /// Globally unique opaque id.
    async fn id(&self) -> ID {
        global_id(NodeKind::BuildRequest, self.row.id)
    }
    /// Buildbot's build request id.
    async fn buildrequestid(&self) -> i32 {
        self.row.id
    }
    /// The id of its buildset.
    async fn bsid(&self) -> i32 {
        self.row.buildsetid
    }
    /// Its buildset.
    async fn buildset(&self, ctx: &Context<'_>) -> Result<Cow<'_, Buildset>> {
        if let Some(b) = &self.buildset {
            return Ok(Cow::Borrowed(b));
        }
        let rows = store::read::buildsets_by_ids(&app(ctx)?.db, &[self.row.buildsetid])
            .await
            .gql(ctx)?;
        let plan = Plan::buildset(&ctx.look_ahead());
        load::buildsets(ctx, rows, &plan)
            .await?
            .pop()
            .map(Cow::Owned)
            .ok_or_else(|| "buildset vanished".into())
    }
    /// The id of the builder it is for.
    async fn builderid(&self) -> i32 {
        self.row.builderid
    }
    /// The builder it is for.
    async fn builder(&self, ctx: &Context<'_>) -> Result<Cow<'_, Builder>> {
        if let Some(b) = &self.builder {
            return Ok(Cow::Borrowed(b));
        }
        store::read::builders_by_ids(&app(ctx)?.db, &[self.row.builderid])
            .await
            .gql(ctx)?
            .pop()
            .map(|b| Cow::Owned(Builder(b)))
            .ok_or_else(|| "builder vanished".into())
    }
    /// Scheduling priority; higher runs first.
    async fn priority(&self) -> i32 {
        self.row.priority
    }
    /// Whether the request is done.
    async fn complete(&self) -> bool {
        self.row.complete.unwrap_or(0) != 0
    }
    /// Buildbot result code; null while incomplete.
    async fn results(&self) -> Option<i32> {
        if self.row.complete.unwrap_or(0) == 0 {
            return None;
        }
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
        self.row.waited_for.unwrap_or(0) != 0
    }
}

/// A builder: the thing that runs builds of one kind.
#[derive(Clone, Debug)]
pub struct Builder(pub builders::Model);

/// A builder: the thing that runs builds of one kind.
#[Object]
impl Builder {
    /// Globally unique opaque id.
    async fn id(&self) -> ID {
        global_id(NodeKind::Builder, self.0.id)
    }
    /// Buildbot's builder id.
    async fn builderid(&self) -> i32 {
        self.0.id
    }
    /// The builder's unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// A human description, if any.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
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
