use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    Context, ContextSelectionSet, OutputType, Positioned, Result, ServerResult, Subscription,
    Value, Variables,
};
use futures_util::{Stream, StreamExt};

use super::filter::{too_large, BuildsetFilter};
use super::plan::{relations, Selected};
use super::{app, StoreResultExt};
use crate::error::{coded, Code};
use crate::live::{Connection, Kind, Refused};
use crate::store::BuildsetView;

/// Which subscription operation a stream runs: its text, operation name and
/// variables, hashed (with a key of this process, so that no client can make two
/// differ and collide). Subscriptions with the same key select the same fields of the
/// same events, so each event is answered once for all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SelectionKey(u64);

impl SelectionKey {
    pub fn of(query: &str, operation: Option<&str>, variables: &Variables) -> SelectionKey {
        static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        let vars = serde_json::to_string(variables).unwrap_or_default();
        SelectionKey(
            KEYS.get_or_init(Default::default)
                .hash_one((query, operation, vars)),
        )
    }
}

/// What one condition of a subscription's `where` weighs against
/// `--max-subscription-bytes`.
pub const CONDITION_WEIGHT: u64 = 64 << 10;

/// What an open subscription weighs against `--max-subscription-bytes`.
#[derive(Clone, Copy, Debug)]
pub struct SubscriptionCost(pub u64);

/// The answers given for each event, per selection: the first subscriber of a key
/// answers an event while the others wait for it, then take its answer. An answer
/// lives as long as its event does (while some subscriber has it waiting).
#[derive(Default)]
pub struct EventAnswers(Mutex<HashMap<(usize, SelectionKey), Answer>>);

/// An event (held weakly: the answer must not keep it alive) and its answer, once
/// given.
type Answer = (Weak<BuildsetView>, Arc<tokio::sync::OnceCell<Value>>);

/// Entries past which answers of events no one holds any more are swept out.
const ANSWERS_SWEEP: usize = 1024;

impl EventAnswers {
    /// The cell for this event's answer to this selection.
    fn cell(
        &self,
        event: &Arc<BuildsetView>,
        key: SelectionKey,
    ) -> Option<Arc<tokio::sync::OnceCell<Value>>> {
        let mut answers = self.0.lock().ok()?;
        let at = (Arc::as_ptr(event) as usize, key);
        if let Some((held, cell)) = answers.get(&at) {
            // The address of a dropped event may have been reused by a new one.
            if held.as_ptr() == Arc::as_ptr(event) && held.strong_count() > 0 {
                return Some(cell.clone());
            }
        }
        if answers.len() >= ANSWERS_SWEEP {
            answers.retain(|_, (held, _)| held.strong_count() > 0);
        }
        let cell = Arc::new(tokio::sync::OnceCell::new());
        answers.insert(at, (Arc::downgrade(event), cell.clone()));
        Some(cell)
    }
}

/// One event of a subscription, answered through [`EventAnswers`].
pub struct Event(Arc<BuildsetView>);

impl OutputType for Event {
    fn type_name() -> Cow<'static, str> {
        <BuildsetView as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <BuildsetView as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <BuildsetView as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let app = ctx.data_opt::<super::AppData>();
        // An event's answer is bounded as a query's is (--max-response-bytes): the
        // subscription's budget starts again for each event, answered one at a time.
        let answer_it = || async {
            super::operation(ctx).budget().reset();
            OutputType::resolve(&*self.0, ctx, field).await
        };
        let shared = ctx
            .data_opt::<SelectionKey>()
            .copied()
            .zip(app.map(|a| &a.answers));
        let Some(cell) = shared.and_then(|(key, answers)| answers.cell(&self.0, key)) else {
            return answer_it().await;
        };
        let mut computed = false;
        let answer = cell
            .get_or_try_init(|| {
                computed = true;
                answer_it()
            })
            .await?
            .clone();
        let how = if computed { "computed" } else { "shared" };
        metrics::counter!("bsgql_subscription_answers_total", "how" => how).increment(1);
        Ok(answer)
    }
}

/// Buildsets as they are added and completed, by this server, another one on the
/// same database, Buildbot itself or plain SQL (over WebSocket, graphql-transport-ws).
pub struct SubscriptionRoot;

async fn follow(
    ctx: &Context<'_>,
    kind: Kind,
    filter: Option<BuildsetFilter>,
) -> Result<impl Stream<Item = Event>> {
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
    // Every event runs every open subscription's `where` again in SQL: conditions
    // on sourcestamps and build requests cost about 1.6 ms each per event on
    // SQLite, so 1,000 subscriptions of 99 conditions cost 158 s of CPU per write.
    // Each condition weighs against --max-subscription-bytes as a large document
    // does: the default holds about 1,000 conditions in all.
    let conditions = filter.as_ref().map_or(0, |f| f.size().0) as u64;
    let weight = ctx
        .data_opt::<SubscriptionCost>()
        .map_or(0, |c| c.0)
        .saturating_add(conditions.saturating_mul(CONDITION_WEIGHT));
    app(ctx)?
        .hub
        .subscribe(kind, filter, rel, connection, weight)
        .await
        .map(|events| events.map(Event))
        .map_err(refused)
}

/// A subscription the hub refused, as the client's error.
fn refused(r: Refused) -> async_graphql::Error {
    use async_graphql::ErrorExtensions as _;
    match r {
        Refused::TooMany(max) => coded(
            Code::BadUserInput,
            format!("this connection already has {max} subscriptions (--max-subscriptions-per-connection): end one first"),
        )
        .extend_with(|_, x| x.set("limit", max)),
        Refused::Full(max) => coded(
            Code::Unavailable,
            format!("this server holds {max} subscriptions already (--max-subscriptions): try again later"),
        )
        .extend_with(|_, x| x.set("limit", max)),
        Refused::Heavy(max) => coded(
            Code::Unavailable,
            format!("the open subscriptions hold {max} bytes of documents already (--max-subscription-bytes): try again later, or subscribe with a smaller selection"),
        )
        .extend_with(|_, x| x.set("limit", max)),
        Refused::ShuttingDown => coded(Code::Unavailable, "the server is shutting down"),
    }
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
    ) -> Result<impl Stream<Item = Event>> {
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
    ) -> Result<impl Stream<Item = Event>> {
        follow(ctx, Kind::Completed(bsid), filter).await
    }
}
