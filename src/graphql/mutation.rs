use async_graphql::{Context, InputObject, Json, Object, OneofObject, Result, SimpleObject};

use super::plan::{relations, Selected};
use super::scalars::DateTime;
use super::types::BuilderRequestId;
use super::{app, StoreResultExt};
use crate::error::bad_input;
use crate::store::{
    self, BuilderRow, BuildsetView, NewBuildset, NewPatch, NewProperty, RequestView, SourceStampRef,
};

/// Submitting and completing buildsets, and registering builders.
pub struct MutationRoot;

/// A sourcestamp for a new buildset: exactly one of an existing id or a description.
// Inputs live for one request; boxing the description would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(OneofObject)]
pub enum SourceStampInput {
    /// An existing sourcestamp.
    Ssid(i32),
    /// A description, found by its hash or created.
    Stamp(SourceStampSpec),
}

/// A sourcestamp description.
#[derive(InputObject)]
pub struct SourceStampSpec {
    /// The branch (null for the default branch).
    branch: Option<String>,
    /// The revision (null for the latest).
    revision: Option<String>,
    /// The repository URL.
    #[graphql(default_with = "Some(String::new())")]
    repository: Option<String>,
    /// The codebase name.
    #[graphql(default_with = "Some(String::new())")]
    codebase: Option<String>,
    /// The project name.
    #[graphql(default_with = "Some(String::new())")]
    project: Option<String>,
    /// A patch on top of the revision; makes a new sourcestamp every time.
    patch: Option<PatchInput>,
}

/// A patch to apply on top of a revision.
#[derive(InputObject)]
pub struct PatchInput {
    /// The patch text.
    body: String,
    /// The strip level.
    #[graphql(default_with = "Some(1)")]
    level: Option<i32>,
    /// Who wrote it.
    #[graphql(default_with = "Some(String::new())")]
    author: Option<String>,
    /// What it is for.
    #[graphql(default_with = "Some(String::new())")]
    comment: Option<String>,
    /// The subdirectory it applies in.
    subdir: Option<String>,
}

/// A buildset property.
#[derive(InputObject)]
pub struct PropertyInput {
    /// The name (at most 256 characters, unique within the buildset).
    name: String,
    /// Any JSON value, stored exactly.
    value: Option<Json<serde_json::Value>>,
    /// What set it.
    source: String,
}

/// Everything a scheduler gives to submit a buildset.
#[derive(InputObject)]
pub struct AddBuildsetInput {
    /// Its sourcestamps, in order (at least one, no sourcestamp twice).
    sourcestamps: Vec<SourceStampInput>,
    /// Why it is submitted (at most 256 characters).
    reason: String,
    /// Its properties.
    properties: Option<Vec<PropertyInput>>,
    /// The builders to request builds on (one build request each). Empty: the
    /// buildset is complete at once with SUCCESS, as Buildbot completes it.
    builderids: Vec<i32>,
    /// An identifier of the submitter's (at most 256 characters).
    external_idstring: Option<String>,
    /// When it was submitted; now when absent.
    submitted_at: Option<DateTime>,
    /// The build that triggered it.
    parent_buildid: Option<i32>,
    /// How it relates to that build.
    parent_relationship: Option<String>,
    /// The build it rebuilds.
    rebuilt_buildid: Option<i32>,
    /// Whether the submitter waits for the result.
    #[graphql(default_with = "Some(false)")]
    waited_for: Option<bool>,
    /// Build request priority.
    #[graphql(default_with = "Some(0)")]
    priority: Option<i32>,
    /// The scheduler it comes from, stored as Buildbot's schedulers store it (the
    /// property `scheduler`, source `Scheduler`).
    scheduler: Option<String>,
    /// Makes retries safe (at most 256 characters): a call whose key a buildset
    /// submitted in the last 24 hours carries returns that buildset (`created:
    /// false`) instead of adding another. Stored as the buildset's
    /// `externalIdstring`, so not given with it.
    idempotency_key: Option<String>,
}

impl AddBuildsetInput {
    /// Refuses a list longer than `max` entries, naming it.
    fn check_lists(&self, max: usize) -> Result<()> {
        for (field, len) in [
            ("sourcestamps", self.sourcestamps.len()),
            ("properties", self.properties.as_ref().map_or(0, Vec::len)),
            ("builderids", self.builderids.len()),
        ] {
            if len > max {
                return Err(async_graphql::ErrorExtensions::extend_with(
                    bad_input(
                        field,
                        format!("{field} has {len} entries; at most {max} are allowed (--max-input-list)"),
                    ),
                    |_, e| {
                        e.set("limit", max);
                        e.set("found", len);
                    },
                ));
            }
        }
        Ok(())
    }

    fn into_new(self) -> Result<NewBuildset> {
        Ok(NewBuildset {
            sourcestamps: self
                .sourcestamps
                .into_iter()
                .map(|s| match s {
                    SourceStampInput::Ssid(id) => SourceStampRef::Id(id),
                    SourceStampInput::Stamp(spec) => SourceStampRef::Spec(store::SourceStampSpec {
                        branch: spec.branch,
                        revision: spec.revision,
                        repository: spec.repository.unwrap_or_default(),
                        codebase: spec.codebase.unwrap_or_default(),
                        project: spec.project.unwrap_or_default(),
                        patch: spec.patch.map(|p| NewPatch {
                            body: p.body.into_bytes(),
                            level: p.level.unwrap_or(1),
                            author: p.author.unwrap_or_default(),
                            comment: p.comment.unwrap_or_default(),
                            subdir: p.subdir,
                        }),
                    }),
                })
                .collect(),
            reason: Some(self.reason),
            properties: self
                .properties
                .unwrap_or_default()
                .into_iter()
                .map(|p| NewProperty {
                    name: p.name,
                    value: p.value.map_or(serde_json::Value::Null, |j| j.0),
                    source: p.source,
                })
                .collect(),
            builderids: self.builderids,
            external_idstring: self.external_idstring,
            submitted_at: self
                .submitted_at
                .map(|t| t.epoch("submittedAt"))
                .transpose()?,
            parent_buildid: self.parent_buildid,
            parent_relationship: self.parent_relationship,
            rebuilt_buildid: self.rebuilt_buildid,
            waited_for: self.waited_for.unwrap_or(false),
            priority: self.priority.unwrap_or(0),
            scheduler: self.scheduler,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// What `addBuildset` created.
#[derive(SimpleObject)]
pub struct AddBuildsetPayload {
    /// The new buildset's id.
    bsid: i32,
    /// The new buildset.
    buildset: BuildsetView,
    /// The build request created for each builder, in the order given.
    brids: Vec<BuilderRequestId>,
    /// False when the idempotency key found a buildset an earlier call added (this
    /// call wrote nothing).
    created: bool,
}

/// Submitting and completing buildsets, and registering builders.
#[Object(name = "Mutation")]
impl MutationRoot {
    /// Submits a buildset: its sourcestamps (found or created), properties and one
    /// build request per builder, all in one transaction.
    async fn add_buildset(
        &self,
        ctx: &Context<'_>,
        input: AddBuildsetInput,
    ) -> Result<AddBuildsetPayload> {
        let app = app(ctx)?;
        input.check_lists(app.limits.max_input_list)?;
        let new = input.into_new()?;
        let rel = relations(Selected::Buildset, &ctx.look_ahead().field("buildset"));
        let (added, buildset) = app
            .store
            .add_buildset(&new, &rel, super::operation(ctx))
            .await
            .gql(ctx)?;
        Ok(AddBuildsetPayload {
            bsid: added.bsid,
            created: added.created,
            buildset,
            brids: added
                .brids
                .into_iter()
                .map(|(builderid, buildrequestid)| BuilderRequestId {
                    builderid,
                    buildrequestid,
                })
                .collect(),
        })
    }

    /// Marks a buildset complete with a Buildbot result code (0-6). Fails with
    /// NOT_FOUND for an unknown buildset and ALREADY_COMPLETE when it is complete;
    /// attached to a Buildbot master, with BUILD_REQUESTS_UNFINISHED while any of its
    /// build requests is unfinished (the master completes it then).
    async fn complete_buildset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The buildset to complete.")] bsid: i32,
        #[graphql(desc = "Its Buildbot result code, 0-6.")] results: i32,
        #[graphql(desc = "When it completed; now when absent.")] complete_at: Option<DateTime>,
    ) -> Result<BuildsetView> {
        let app = app(ctx)?;
        let complete_at = complete_at.map(|t| t.epoch("completeAt")).transpose()?;
        let rel = relations(Selected::Buildset, &ctx.look_ahead());
        match app
            .store
            .complete_buildset(bsid, results, complete_at, &rel, super::operation(ctx))
            .await
        {
            Ok(view) => Ok(view),
            Err(e @ crate::store::StoreError::AlreadyComplete(_)) => {
                // A retry after a lost answer lands here: the stored result lets the
                // client tell its own completion from someone else's.
                let stored = app
                    .store
                    .buildset(bsid, super::operation(ctx))
                    .await
                    .gql(ctx)?;
                Err::<BuildsetView, _>(e).gql(ctx).map_err(|err| {
                    async_graphql::ErrorExtensions::extend_with(err, |_, x| {
                        if let Some(row) = &stored {
                            x.set("results", row.results.map(i32::from));
                            x.set("completeAt", row.complete_at.map(|t| t.to_rfc3339()));
                        }
                    })
                })
            }
            Err(e) => Err(e).gql(ctx),
        }
    }

    /// Cancels every unfinished build request of a buildset, as Buildbot's own cancel
    /// does: one no master has claimed completes with CANCELLED (6) at once; a
    /// claimed one is stopped by its master (through the bridge), which then
    /// completes it. Once none is left unfinished the buildset completes, with the
    /// worst of its requests' results. NOT_FOUND for an unknown buildset,
    /// ALREADY_COMPLETE for a complete one.
    async fn cancel_buildset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The buildset whose requests to cancel.")] bsid: i32,
    ) -> Result<BuildsetView> {
        let app = app(ctx)?;
        app.store
            .cancel(
                store::cancel::CancelTarget::Buildset(bsid),
                super::operation(ctx),
            )
            .await
            .gql(ctx)?;
        let rel = relations(Selected::Buildset, &ctx.look_ahead());
        app.store
            .buildset_view(bsid, &rel, super::operation(ctx))
            .await
            .and_then(|v| {
                v.ok_or_else(|| {
                    store::StoreError::NotFound(format!("buildset {bsid} does not exist"))
                })
            })
            .gql(ctx)
    }

    /// Cancels one build request, as `cancelBuildset` cancels each of its buildset's.
    /// NOT_FOUND for an unknown request, ALREADY_COMPLETE for a finished one.
    async fn cancel_build_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The build request to cancel.")] buildrequestid: i32,
    ) -> Result<RequestView> {
        let app = app(ctx)?;
        app.store
            .cancel(
                store::cancel::CancelTarget::BuildRequest(buildrequestid),
                super::operation(ctx),
            )
            .await
            .gql(ctx)?;
        let rows = app
            .store
            .buildrequests_by_ids(&[buildrequestid], super::operation(ctx))
            .await
            .gql(ctx)?;
        let rel = relations(Selected::BuildRequest, &ctx.look_ahead());
        app.store
            .request_graph(rows, &rel, super::operation(ctx))
            .await
            .and_then(|mut v| {
                v.pop().ok_or_else(|| {
                    store::StoreError::NotFound(format!(
                        "build request {buildrequestid} does not exist"
                    ))
                })
            })
            .gql(ctx)
    }

    /// Finds a builder by name, or creates it; a given description is stored.
    async fn ensure_builder(
        &self,
        ctx: &Context<'_>,
        name: String,
        description: Option<String>,
    ) -> Result<BuilderRow> {
        app(ctx)?
            .store
            .ensure_builder(&name, description.as_deref(), super::operation(ctx))
            .await
            .gql(ctx)
    }
}
