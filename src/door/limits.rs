//! Limit errors that say which limit was hit and by how much. async-graphql refuses
//! a query over its depth or complexity limit with a bare "Query is nested too
//! deep."; the numbers exist only inside its validation. So, only when a request was
//! refused that way, it is validated once more by a twin schema without limits whose
//! one extension reads the numbers and stops before anything executes. The served
//! schema carries no extension: one would sit on every field's resolve path.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{Request, Response, ServerError, ValidationResult, Value};

use crate::error::Code;
use crate::graphql::codes::{limit_of, Limit};
use crate::graphql::{self, ApiSchema};

#[derive(Default)]
struct Slot(Mutex<Option<(usize, usize)>>);

struct ReadNumbers;

impl ExtensionFactory for ReadNumbers {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ReadNumbers)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ReadNumbers {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        if let Ok(found) = next.run(ctx).await {
            if let Some(slot) = ctx.data_opt::<Arc<Slot>>() {
                if let Ok(mut s) = slot.0.lock() {
                    *s = Some((found.depth, found.complexity));
                }
            }
        }
        Err(vec![ServerError::new("measured only", None)])
    }
}

pub struct Measure {
    twin: ApiSchema,
    max_depth: usize,
    max_complexity: usize,
}

impl Measure {
    pub fn new(max_depth: usize, max_complexity: usize) -> Self {
        Measure {
            twin: graphql::schema_builder()
                .limit_recursive_depth(graphql::recursion_limit(max_depth))
                .extension(ReadNumbers)
                .finish(),
            max_depth,
            max_complexity,
        }
    }

    /// Rewrites a limit refusal in `response` to name the limit and the value found;
    /// `again` rebuilds the request, and is called only for such a refusal.
    pub async fn explain(
        &self,
        mut response: Response,
        again: impl FnOnce() -> Request,
    ) -> Response {
        let Some(i) = response
            .errors
            .iter()
            .position(|e| limit_of(&e.message).is_some())
        else {
            return response;
        };
        let slot = Arc::new(Slot::default());
        let _ = self.twin.execute(again().data(slot.clone())).await;
        let found = slot.0.lock().ok().and_then(|s| *s);
        let err = &mut response.errors[i];
        let (name, flag, limit, value) = match (limit_of(&err.message), found) {
            (Some(Limit::Depth), Some((depth, _))) => {
                ("depth", "--max-depth", self.max_depth, depth)
            }
            (Some(Limit::Complexity), Some((_, complexity))) => (
                "complexity",
                "--max-complexity",
                self.max_complexity,
                complexity,
            ),
            (Some(Limit::Depth), None) => ("depth", "--max-depth", self.max_depth, 0),
            _ => ("complexity", "--max-complexity", self.max_complexity, 0),
        };
        err.message = if value > 0 {
            format!("query {name} {value} exceeds the limit of {limit} ({flag})")
        } else {
            format!("query {name} exceeds the limit of {limit} ({flag})")
        };
        let ext = err.extensions.get_or_insert_with(Default::default);
        ext.set("code", Value::from(Code::QueryTooComplex.as_str()));
        ext.set("limit", Value::from(limit));
        if value > 0 {
            ext.set("found", Value::from(value));
        }
        response
    }
}
