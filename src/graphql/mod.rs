//! The GraphQL schema: roots, types, inputs and the page loader.

pub(crate) mod codes;
pub use codes::with_codes;
mod cursor;
pub mod fast;
pub(crate) mod fields;
pub mod filter;
mod mutation;
pub mod order;
pub mod plan;
mod query;
pub mod scalars;
pub mod subscription;
pub mod types;

use crate::error::{from_store, RequestId};
use crate::store::tag::Operation;
use crate::store::{Store, StoreResult};
use async_graphql::{Context, Result, Schema, SchemaBuilder};

pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type ApiSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

pub use crate::config::Limits;

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

/// The store's view of the operation (its statements, tag and byte budget), which
/// the door puts in every request's data and every store call is given; an
/// unbounded one where there is none (tests running the schema alone).
pub(crate) fn operation<'a, T>(ctx: &async_graphql::context::ContextBase<'a, T>) -> &'a Operation {
    static UNBOUNDED: std::sync::OnceLock<std::sync::Arc<Operation>> = std::sync::OnceLock::new();
    match ctx.data_opt::<std::sync::Arc<Operation>>() {
        Some(op) => op,
        None => UNBOUNDED.get_or_init(Operation::unbounded),
    }
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

/// The schema's own description: the `schema` definition of `schema.graphql` carries it, and
/// `__schema { description }` answers it.
pub const SCHEMA_DESCRIPTION: &str = "\
buildsets-graphql: Buildbot's buildsets (the build requests a scheduler submits together), \
read, submitted, completed and watched live, on Buildbot's own database schema.

Every error carries `extensions.code`:
- BAD_REQUEST: not a GraphQL request (method, media type, body, a malformed persistedQuery).
- GRAPHQL_PARSE_FAILED: the document is not GraphQL syntax.
- GRAPHQL_VALIDATION_FAILED: the document does not fit this schema (a wrong literal included).
- OPERATION_RESOLUTION_FAILURE: operationName names no operation of the document.
- BAD_USER_INPUT: an argument's or a variable's value is wrong; `extensions.field` names it.
- PERSISTED_QUERY_NOT_FOUND: a persisted query's hash, or a trusted document's id, not known.
- PERSISTED_QUERY_NOT_SUPPORTED: persisted queries are turned off.
- PERSISTED_QUERY_NOT_IN_LIST: the server runs only its trusted documents, and not this one.
- UNAUTHENTICATED: a token is needed. FORBIDDEN: the token cannot do this.
- QUERY_TOO_COMPLEX: a limit (`extensions.limit`, `extensions.found`).
- NOT_FOUND, ALREADY_COMPLETE, BUILD_REQUESTS_UNFINISHED: the mutation's target.
- UNAVAILABLE: the database or the server cannot take it now; try again.
- INTERNAL_SERVER_ERROR: the server's fault; `extensions.requestId` names it in the log.";

/// The SDL of the schema (independent of any database), with its description.
pub fn sdl() -> String {
    let sdl = schema_builder().finish().sdl();
    let description = format!("\"\"\"\n{SCHEMA_DESCRIPTION}\n\"\"\"\nschema {{");
    match sdl.rfind("\nschema {") {
        Some(at) => format!(
            "{}\n{}{}",
            &sdl[..at],
            description,
            &sdl[at + "\nschema {".len()..]
        ),
        None => sdl,
    }
}
