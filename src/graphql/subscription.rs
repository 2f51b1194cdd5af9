use std::sync::Arc;

use async_graphql::{Context, Result, Subscription};
use futures_util::Stream;

use super::filter::{too_large, BuildsetFilter};
use super::plan::{relations, Selected};
use super::{app, StoreResultExt};
use crate::error::{coded, Code};
use crate::live::{Connection, Kind, Refused};
use crate::store::BuildsetView;

/// Buildsets as they are added and completed, by this server, another one on the
/// same database, Buildbot itself or plain SQL (over WebSocket, graphql-transport-ws).
pub struct SubscriptionRoot;

async fn follow(
    ctx: &Context<'_>,
    kind: Kind,
    filter: Option<BuildsetFilter>,
) -> Result<impl Stream<Item = Arc<BuildsetView>>> {
    let limits = &app(ctx)?.limits;
    let filter = filter
        .map(|f| f.into_bounded_filter(limits.max_where_conditions, limits.max_where_values))
        .transpose()?;
    if let Some(values) = filter.as_ref().map(|f| f.size().1) {
        // A subscription's filter runs again for every change, for as long as it
        // lives: by default it gets a tenth of a query's bound.
        let max = limits.max_subscription_where_values;
        if values > max {
            return Err(too_large(
                format!("a subscription's `where` compares {values} values; at most {max} are allowed (--max-subscription-where-values)"),
                values,
                max,
            ));
        }
    }
    if let Some(f) = &filter {
        // Checked here, once: a filter MySQL refuses would fail every later match.
        app(ctx)?.store.check_filter(f).await.gql(ctx)?;
    }
    let rel = relations(Selected::Buildset, &ctx.look_ahead());
    let connection = ctx.data_opt::<Arc<Connection>>().cloned();
    app(ctx)?
        .hub
        .subscribe(kind, filter, rel, connection)
        .await
        .map_err(|r| match r {
            Refused::TooMany(max) => {
                let mut e = coded(
                    Code::BadUserInput,
                    format!("this connection already has {max} subscriptions (--max-subscriptions-per-connection): end one first"),
                );
                e = async_graphql::ErrorExtensions::extend_with(e, |_, x| {
                    x.set("limit", max);
                });
                e
            }
            Refused::Full(max) => {
                let e = coded(
                    Code::Unavailable,
                    format!("this server holds {max} subscriptions already (--max-subscriptions): try again later"),
                );
                async_graphql::ErrorExtensions::extend_with(e, |_, x| x.set("limit", max))
            }
            Refused::ShuttingDown => coded(Code::Unavailable, "the server is shutting down"),
        })
}

/// Buildsets as they are added and completed.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Each buildset once it is added (committed), with what the selection asks for.
    #[graphql(
        complexity = "child_complexity.saturating_add(1).saturating_add(BuildsetFilter::cost(&filter))"
    )]
    async fn buildset_added(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where", desc = "Conditions the buildsets must meet.")] filter: Option<
            BuildsetFilter,
        >,
    ) -> Result<impl Stream<Item = Arc<BuildsetView>>> {
        follow(ctx, Kind::Added, filter).await
    }

    /// Each buildset once it is completed; only buildset `bsid` when it is given.
    #[graphql(
        complexity = "child_complexity.saturating_add(1).saturating_add(BuildsetFilter::cost(&filter))"
    )]
    async fn buildset_completed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this buildset's completion.")] bsid: Option<i32>,
        #[graphql(name = "where", desc = "Conditions the buildsets must meet.")] filter: Option<
            BuildsetFilter,
        >,
    ) -> Result<impl Stream<Item = Arc<BuildsetView>>> {
        follow(ctx, Kind::Completed(bsid), filter).await
    }
}
