use async_graphql::{Context, Object, Result, ID};

use super::cursor;
use super::fast::{Each, One};
use super::filter::{
    page_size, BuildsetConnection, BuildsetEdge, BuildsetFilter, BuildsetOrder, PageInfo,
};
use super::plan::{relations, Selected};
use super::types::{parse_global_id, weighted, Node, NodeKind, BUILDERS_WEIGHT};
use super::{app, operation, StoreResultExt};
use crate::config::{Limits, DEFAULT_LIMITS, MAX_PAGE_CEILING};
use crate::error::bad_input;
use crate::store::query::{effective_order, OrderKey, PageRequest};
use crate::store::{
    BuildRequestRow, BuilderRow, BuildsetRow, BuildsetView, Property, RequestView, SourceStampRow,
    StampView,
};

/// Reading buildsets, sourcestamps, build requests and builders.
pub struct QueryRoot;

/// Buildsets with what the selection at the current field asks for.
pub(crate) async fn buildsets_for(
    ctx: &Context<'_>,
    rows: Vec<BuildsetRow>,
) -> Result<Vec<BuildsetView>> {
    let rel = relations(Selected::Buildset, &ctx.look_ahead());
    app(ctx)?
        .store
        .buildset_graph(rows, &rel, operation(ctx))
        .await
        .gql(ctx)
}

async fn buildrequests_for(
    ctx: &Context<'_>,
    rows: Vec<BuildRequestRow>,
) -> Result<Vec<RequestView>> {
    let rel = relations(Selected::BuildRequest, &ctx.look_ahead());
    app(ctx)?
        .store
        .request_graph(rows, &rel, operation(ctx))
        .await
        .gql(ctx)
}

async fn sourcestamps_for(ctx: &Context<'_>, rows: Vec<SourceStampRow>) -> Result<Vec<StampView>> {
    let rel = relations(Selected::SourceStamp, &ctx.look_ahead());
    app(ctx)?
        .store
        .stamp_graph(rows, rel.patches, operation(ctx))
        .await
        .gql(ctx)
}

/// Reading buildsets, sourcestamps, build requests and builders.
#[Object(name = "Query")]
impl QueryRoot {
    /// Any object by its global id; null when it does not exist.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let Some((kind, n)) = parse_global_id(&id) else {
            return Err(bad_input("id", "not a node id of this API"));
        };
        let store = &app(ctx)?.store;
        Ok(match kind {
            NodeKind::Buildset => {
                let rows = store
                    .buildsets_by_ids(&[n], operation(ctx))
                    .await
                    .gql(ctx)?;
                buildsets_for(ctx, rows).await?.pop().map(Node::Buildset)
            }
            NodeKind::SourceStamp => {
                let rows = store
                    .sourcestamps_by_ids(&[n], operation(ctx))
                    .await
                    .gql(ctx)?;
                sourcestamps_for(ctx, rows)
                    .await?
                    .pop()
                    .map(Node::SourceStamp)
            }
            NodeKind::BuildRequest => {
                let rows = store
                    .buildrequests_by_ids(&[n], operation(ctx))
                    .await
                    .gql(ctx)?;
                buildrequests_for(ctx, rows)
                    .await?
                    .pop()
                    .map(Node::BuildRequest)
            }
            NodeKind::Builder => store
                .builders_by_ids(&[n], operation(ctx))
                .await
                .gql(ctx)?
                .pop()
                .map(Node::Builder),
            NodeKind::Build => store
                .builds_by_ids(&[n], operation(ctx))
                .await
                .gql(ctx)?
                .pop()
                .map(Node::Build),
            NodeKind::Patch => store
                .patches_by_ids(&[n], operation(ctx))
                .await
                .gql(ctx)?
                .pop()
                .map(Node::Patch),
        })
    }

    /// One buildset by its id, or null.
    async fn buildset(
        &self,
        ctx: &Context<'_>,
        bsid: i32,
    ) -> Result<Option<One<'static, BuildsetView>>> {
        let rel = relations(Selected::Buildset, &ctx.look_ahead());
        Ok(app(ctx)?
            .store
            .buildset_view(bsid, &rel, operation(ctx))
            .await
            .gql(ctx)?
            .map(One::Owned))
    }

    /// Buildsets, filtered, ordered and paged (Relay cursor connection). `first` /
    /// `last` default to 100 and are at most the server's `--max-page-size` (1000
    /// unless configured).
    #[graphql(
        complexity = "(first.or(last).map_or(DEFAULT_LIMITS.default_page, |n| n.clamp(1, MAX_PAGE_CEILING as i32) as u64) as usize)\
            .saturating_mul(child_complexity)\
            .saturating_add(BuildsetFilter::cost(&filter))"
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
        let (req, keys) = page_request(
            &app.limits,
            PageArgs {
                complete,
                filter,
                order_by,
                first,
                after,
                last,
                before,
            },
        )?;
        let page = app.store.page(&req, operation(ctx)).await.gql(ctx)?;
        let look = ctx.look_ahead();
        let rel = relations(Selected::Buildset, &look.field("nodes")).merge(relations(
            Selected::Buildset,
            &look.field("edges").field("node"),
        ));
        let (rows, values): (Vec<_>, Vec<_>) = page.rows.into_iter().unzip();
        let nodes = app
            .store
            .buildset_graph(rows, &rel, operation(ctx))
            .await
            .gql(ctx)?;
        let edges: Vec<BuildsetEdge> = nodes
            .into_iter()
            .zip(values)
            .map(|(node, values)| BuildsetEdge {
                cursor: cursor::encode(&keys, values),
                node,
            })
            .collect();
        Ok(BuildsetConnection {
            page_info: PageInfo {
                has_next_page: page.more_after,
                has_previous_page: page.more_before,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            complete: req.complete,
            filter: req.filter,
        })
    }

    /// The `count` most recently submitted buildsets (optionally only those with a
    /// sourcestamp on `branch` / `repository`), oldest first.
    #[graphql(complexity = "count.clamp(1, MAX_PAGE_CEILING as i32) as usize * child_complexity")]
    async fn recent_buildsets(
        &self,
        ctx: &Context<'_>,
        count: i32,
        branch: Option<String>,
        repository: Option<String>,
        complete: Option<bool>,
    ) -> Result<Each<'static, BuildsetView>> {
        let app = app(ctx)?;
        let count = page_size("count", Some(count), app.limits.max_page)?.unwrap_or_default();
        let rows = app
            .store
            .recent(
                count,
                branch.as_deref(),
                repository.as_deref(),
                complete,
                operation(ctx),
            )
            .await
            .gql(ctx)?;
        buildsets_for(ctx, rows).await.map(Each::Owned)
    }

    /// The properties of a buildset, sorted by name; empty for an unknown buildset.
    async fn buildset_properties(&self, ctx: &Context<'_>, bsid: i32) -> Result<Vec<Property>> {
        app(ctx)?
            .store
            .buildset_properties(bsid, operation(ctx))
            .await
            .gql(ctx)
    }

    /// One sourcestamp by its id, or null.
    async fn sourcestamp(&self, ctx: &Context<'_>, ssid: i32) -> Result<Option<StampView>> {
        let rows = app(ctx)?
            .store
            .sourcestamps_by_ids(&[ssid], operation(ctx))
            .await
            .gql(ctx)?;
        Ok(sourcestamps_for(ctx, rows).await?.pop())
    }

    /// One build request by its id, or null.
    async fn buildrequest(
        &self,
        ctx: &Context<'_>,
        buildrequestid: i32,
    ) -> Result<Option<RequestView>> {
        let rows = app(ctx)?
            .store
            .buildrequests_by_ids(&[buildrequestid], operation(ctx))
            .await
            .gql(ctx)?;
        Ok(buildrequests_for(ctx, rows).await?.pop())
    }

    /// One builder by its id, or null.
    async fn builder(&self, ctx: &Context<'_>, builderid: i32) -> Result<Option<BuilderRow>> {
        let rows = app(ctx)?
            .store
            .builders_by_ids(&[builderid], operation(ctx))
            .await
            .gql(ctx)?;
        Ok(rows.into_iter().next())
    }

    /// Every builder, by id.
    #[graphql(complexity = "weighted(BUILDERS_WEIGHT, child_complexity)")]
    async fn builders(&self, ctx: &Context<'_>) -> Result<Vec<BuilderRow>> {
        app(ctx)?.store.all_builders(operation(ctx)).await.gql(ctx)
    }
}

/// The arguments of `buildsets`, as given.
struct PageArgs {
    complete: Option<bool>,
    filter: Option<BuildsetFilter>,
    order_by: Option<Vec<BuildsetOrder>>,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
}

/// The store's page request for `args`, checked against `limits`, and the sort
/// keys its cursors are made of.
fn page_request(limits: &Limits, args: PageArgs) -> Result<(PageRequest, Vec<OrderKey>)> {
    let max = limits.max_page;
    let mut first = page_size("first", args.first, max)?;
    let last = page_size("last", args.last, max)?;
    if first.is_some() && last.is_some() {
        return Err(bad_input("last", "give `first` or `last`, not both"));
    }
    if first.is_none() && last.is_none() {
        first = Some(limits.default_page);
    }
    let filter = args
        .filter
        .map(|f| f.into_bounded_filter(limits.max_where_conditions, limits.max_where_values))
        .transpose()?;
    let order: Vec<_> = args
        .order_by
        .unwrap_or_default()
        .into_iter()
        .map(BuildsetOrder::key)
        .collect();
    let keys = effective_order(&order);
    let cursor_at = |c: Option<String>, arg: &str| {
        c.as_deref()
            .map(|c| cursor::decode(&keys, c, arg))
            .transpose()
    };
    let req = PageRequest {
        complete: args.complete,
        filter,
        order,
        take_first: first,
        start_after: cursor_at(args.after, "after")?,
        take_last: last,
        end_before: cursor_at(args.before, "before")?,
    };
    Ok((req, keys))
}
