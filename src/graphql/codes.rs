//! Gives every error a machine-readable `extensions.code`, including the ones
//! async-graphql raises itself (parse, validation, input coercion and limits).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::{Response, ServerError, Value};

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

fn code_for(err: &ServerError) -> &'static str {
    let m = err.message.as_str();
    if m.contains("nested too deep") || m.contains("too complex") {
        "QUERY_TOO_COMPLEX"
    } else if err.path.is_empty()
        || m.starts_with("Failed to parse")
        || m.starts_with("Invalid value for argument")
        || m.contains("Oneof")
    {
        // Errors before execution, or while coercing the client's input, are the
        // client's to fix.
        "BAD_USER_INPUT"
    } else {
        "INTERNAL"
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for err in &mut response.errors {
            let has_code = err
                .extensions
                .as_ref()
                .is_some_and(|e| e.get("code").is_some());
            if !has_code {
                let code = code_for(err);
                err.extensions
                    .get_or_insert_with(Default::default)
                    .set("code", Value::from(code));
            }
        }
        response
    }
}
