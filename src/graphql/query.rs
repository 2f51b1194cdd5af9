use async_graphql::{Context, Object, Result, ID};

use super::filter::{
    page_size, BuildsetConnection, BuildsetEdge, BuildsetFilter, BuildsetOrder, PageInfo,
};
use super::load::{self, Plan};
use super::types::{parse_global_id, BuildRequest, Builder, Buildset, Node, NodeKind, Property};
use super::{app, StoreResultExt};
use crate::error::bad_input;
use crate::store::query::{self, PageRequest};
use crate::store::read;

/// Reading buildsets, sourcestamps, build requests and builders.
pub struct QueryRoot;

/// Loads buildsets with what the selection at the current field asks for.
async fn buildsets_for(
    ctx: &Context<'_>,
    rows: Vec<entity::buildsets::Model>,
) -> Result<Vec<Buildset>> {
    let plan = Plan::buildset(&ctx.look_ahead());
    load::buildsets(ctx, rows, &plan).await
}

async fn buildrequests_for(
    ctx: &Context<'_>,
    rows: Vec<entity::buildrequests::Model>,
) -> Result<Vec<BuildRequest>> {
    let mut plan = Plan::default();
    plan.add_requests(&ctx.look_ahead());
    load::buildrequests(ctx, rows, &plan, None).await
}

/// Reading buildsets, sourcestamps, build requests and builders.
#[Object(name = "Query")]
impl QueryRoot {
    /// Any object by its global id; null when it does not exist.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let Some((kind, n)) = parse_global_id(&id) else {
            return Err(bad_input("id", "not a node id of this API"));
        };
        let db = &app(ctx)?.db;
        Ok(match kind {
            NodeKind::Buildset => {
                let rows = read::buildsets_by_ids(db, &[n]).await.gql(ctx)?;
                buildsets_for(ctx, rows).await?.pop().map(Node::Buildset)
            }
            NodeKind::SourceStamp => {
                let rows = read::sourcestamps_by_ids(db, &[n]).await.gql(ctx)?;
                let with_patch = ctx.look_ahead().field("patch").exists();
                load::sourcestamps(ctx, rows, with_patch)
                    .await?
                    .pop()
                    .map(Node::SourceStamp)
            }
            NodeKind::BuildRequest => {
                let rows = read::buildrequests_by_ids(db, &[n]).await.gql(ctx)?;
                buildrequests_for(ctx, rows)
                    .await?
                    .pop()
                    .map(Node::BuildRequest)
            }
            NodeKind::Builder => read::builders_by_ids(db, &[n])
                .await
                .gql(ctx)?
                .pop()
                .map(|b| Node::Builder(Builder(b))),
        })
    }

    /// One buildset by its id, or null.
    async fn buildset(&self, ctx: &Context<'_>, bsid: i32) -> Result<Option<Buildset>> {
        let row = read::get_buildset(&app(ctx)?.db, bsid).await.gql(ctx)?;
        Ok(buildsets_for(ctx, row.into_iter().collect()).await?.pop())
    }

    /// Buildsets, filtered, ordered and paged (Relay cursor connection). `first` /
    /// `last` default to 100 and are at most 1000.
    #[graphql(
        complexity = "first.or(last).unwrap_or(100).clamp(1, 1000) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn buildsets(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only complete (true) or incomplete (false) buildsets.")] complete: Option<
            bool,
        >,
        #[graphql(name = "where", desc = "Conditions the buildsets must meet.")] filter: Option<
            BuildsetFilter,
        >,
        #[graphql(desc = "Sort keys; bsid ascending breaks remaining ties.")] order_by: Option<
            Vec<BuildsetOrder>,
        >,
        #[graphql(desc = "Page forwards: at most this many after `after`.")] first: Option<i32>,
        #[graphql(desc = "Cursor to page forwards from.")] after: Option<String>,
        #[graphql(desc = "Page backwards: at most this many before `before`.")] last: Option<i32>,
        #[graphql(desc = "Cursor to page backwards from.")] before: Option<String>,
    ) -> Result<BuildsetConnection> {
        let app = app(ctx)?;
        let max = app.limits.max_page;
        let mut first = page_size("first", first, max)?;
        let last = page_size("last", last, max)?;
        if first.is_some() && last.is_some() {
            return Err(bad_input("last", "give `first` or `last`, not both"));
        }
        if first.is_none() && last.is_none() {
            first = Some(app.limits.default_page);
        }
        let filter = filter.map(BuildsetFilter::into_filter).transpose()?;
        let req = PageRequest {
            complete,
            filter: filter.clone(),
            order: order_by
                .unwrap_or_default()
                .into_iter()
                .map(BuildsetOrder::key)
                .collect(),
            first,
            after,
            last,
            before,
        };
        let page = query::get_buildsets(&app.db, &req).await.gql(ctx)?;
        let look = ctx.look_ahead();
        let plan = Plan::buildset(&look.field("nodes"))
            .merge(Plan::buildset(&look.field("edges").field("node")));
        let (rows, cursors): (Vec<_>, Vec<_>) = page.rows.into_iter().unzip();
        let nodes = load::buildsets(ctx, rows, &plan).await?;
        let edges: Vec<BuildsetEdge> = nodes
            .into_iter()
            .zip(cursors)
            .map(|(node, cursor)| BuildsetEdge { cursor, node })
            .collect();
        Ok(BuildsetConnection {
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                has_previous_page: page.has_previous_page,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            complete,
            filter,
        })
    }

    /// The `count` most recently submitted buildsets (optionally only those with a
    /// sourcestamp on `branch` / `repository`), oldest first.
    #[graphql(complexity = "count.clamp(1, 1000) as usize * child_complexity")]
    async fn recent_buildsets(
        &self,
        ctx: &Context<'_>,
        count: i32,
        branch: Option<String>,
        repository: Option<String>,
        complete: Option<bool>,
    ) -> Result<Vec<Buildset>> {
        let app = app(ctx)?;
        let count = page_size("count", Some(count), app.limits.max_page)?.unwrap_or_default();
        let rows = query::get_recent_buildsets(
            &app.db,
            count,
            branch.as_deref(),
            repository.as_deref(),
            complete,
        )
        .await
        .gql(ctx)?;
        buildsets_for(ctx, rows).await
    }

    /// The properties of a buildset, sorted by name; empty for an unknown buildset.
    async fn buildset_properties(&self, ctx: &Context<'_>, bsid: i32) -> Result<Vec<Property>> {
        let props = read::get_buildset_properties(&app(ctx)?.db, bsid)
            .await
            .gql(ctx)?;
        Ok(props.into_iter().map(Property).collect())
    }

    /// One sourcestamp by its id, or null.
    async fn sourcestamp(
        &self,
        ctx: &Context<'_>,
        ssid: i32,
    ) -> Result<Option<super::types::SourceStamp>> {
        let rows = read::sourcestamps_by_ids(&app(ctx)?.db, &[ssid])
            .await
            .gql(ctx)?;
        let with_patch = ctx.look_ahead().field("patch").exists();
        Ok(load::sourcestamps(ctx, rows, with_patch).await?.pop())
    }

    /// One build request by its id, or null.
    async fn buildrequest(
        &self,
        ctx: &Context<'_>,
        buildrequestid: i32,
    ) -> Result<Option<BuildRequest>> {
        let rows = read::buildrequests_by_ids(&app(ctx)?.db, &[buildrequestid])
            .await
            .gql(ctx)?;
        Ok(buildrequests_for(ctx, rows).await?.pop())
    }

    /// One builder by its id, or null.
    async fn builder(&self, ctx: &Context<'_>, builderid: i32) -> Result<Option<Builder>> {
        let rows = read::builders_by_ids(&app(ctx)?.db, &[builderid])
            .await
            .gql(ctx)?;
        Ok(rows.into_iter().next().map(Builder))
    }

    /// Every builder, by id.
    async fn builders(&self, ctx: &Context<'_>) -> Result<Vec<Builder>> {
        let rows = read::all_builders(&app(ctx)?.db).await.gql(ctx)?;
        Ok(rows.into_iter().map(Builder).collect())
    }
}
