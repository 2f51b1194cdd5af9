//! Gives every error a machine-readable `extensions.code`, including the ones
//! async-graphql raises itself (parse, validation, input coercion and limits).

use async_graphql::{Response, ServerError, Value};

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

/// The argument path async-graphql names in an input coercion error
/// (`Invalid value for argument "input.sourcestamps.0", …`).
fn argument_of(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Invalid value for argument \"")?;
    Some(rest.split('"').next()?.to_owned())
}

/// Gives every error of `response` a code. Applied to the response rather than as a
/// schema extension: an extension puts every field resolution through its hook chain,
/// which measurably slows large pages.
pub fn with_codes(mut response: Response) -> Response {
    for err in &mut response.errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !has_code {
            let code = code_for(err);
            let field = argument_of(&err.message);
            let ext = err.extensions.get_or_insert_with(Default::default);
            ext.set("code", Value::from(code));
            if let Some(field) = field {
                ext.set("field", Value::from(field));
            }
        }
    }
    response
}
