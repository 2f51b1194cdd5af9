//! The GraphQL schema: roots, types, inputs and the page loader.

pub(crate) mod codes;
pub use codes::with_codes;
mod cursor;
pub mod fast;
pub mod filter;
mod mutation;
pub mod order;
pub mod plan;
mod query;
pub mod scalars;
pub mod subscription;
pub mod types;

use crate::error::{from_store, RequestId};
use crate::store::{Store, StoreResult};
use async_graphql::{Context, Result, Schema, SchemaBuilder};

pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type ApiSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Bounds on what one request may ask for.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Page size when neither `first` nor `last` is given.
    pub default_page: u64,
    /// Largest `first` / `last` / `recentBuildsets(count)`.
    pub max_page: u64,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Fields selected once fragments are expanded (aliases count).
    pub max_selections: usize,
    /// Root fields of one operation (aliases count).
    pub max_root_fields: usize,
    /// Brackets (`{`, `[`, `(`) nested in the document text, checked before parsing.
    pub max_nesting: usize,
    /// Lexical tokens in the document text, checked before parsing.
    pub max_tokens: usize,
    /// Fields one subscription selects once fragments are expanded (aliases count).
    pub max_subscription_selections: usize,
    /// Lists and objects nested in one argument or variable value.
    pub max_value_nesting: usize,
    /// Conditions in one `where`.
    pub max_where_conditions: usize,
    /// Values compared by one `where`.
    pub max_where_values: usize,
    /// Values compared by one subscription's `where`, which runs again on every change.
    pub max_subscription_where_values: usize,
    /// Entries in each list of an `addBuildset` (sourcestamps, properties, builderids).
    pub max_input_list: usize,
    /// Bytes of property values and patches one operation may read (0: no bound).
    pub max_response_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_page: 100,
            max_page: 1000,
            max_depth: 16,
            max_complexity: 20_000,
            max_selections: 10_000,
            max_root_fields: 50,
            max_nesting: 128,
            max_tokens: 50_000,
            max_subscription_selections: 500,
            max_value_nesting: 64,
            max_where_conditions: 100,
            max_where_values: 10_000,
            max_subscription_where_values: 1_000,
            max_input_list: 1_000,
            max_response_bytes: 32 << 20,
        }
    }
}

/// What every resolver can reach.
pub struct AppData {
    pub store: Store,
    /// Live updates (subscriptions).
    pub hub: crate::live::Hub,
    pub limits: Limits,
    /// Events answered once per distinct subscription operation.
    pub answers: std::sync::Arc<subscription::EventAnswers>,
}

pub(crate) fn app<'a>(ctx: &Context<'a>) -> Result<&'a AppData> {
    ctx.data::<AppData>()
}

/// Maps store errors to client errors, with the request id for internal ones.
pub(crate) trait StoreResultExt<T> {
    fn gql(self, ctx: &Context<'_>) -> Result<T>;
}

impl<T> StoreResultExt<T> for StoreResult<T> {
    fn gql(self, ctx: &Context<'_>) -> Result<T> {
        self.map_err(|e| from_store(e, ctx.data_opt::<RequestId>()))
    }
}

/// The schema's types, with no data and no limits.
pub fn schema_builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
}

/// async-graphql's guard on selection nesting (default 32), set above the depth
/// limit so that the depth check, which names the depth found, answers first.
pub fn recursion_limit(max_depth: usize) -> usize {
    max_depth.saturating_mul(2).max(64)
}

/// The schema, with its limits; the SDL it prints is `schema.graphql`.
pub fn build_schema(data: AppData) -> ApiSchema {
    let limits = data.limits.clone();
    schema_builder()
        .data(data)
        .limit_recursive_depth(recursion_limit(limits.max_depth))
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .finish()
}

/// The SDL of the schema (independent of any database).
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}
