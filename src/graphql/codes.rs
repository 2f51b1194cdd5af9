//! Gives every error a machine-readable `extensions.code`, including the ones
//! async-graphql raises itself (parse, validation, input coercion and limits).
//!
//! Every error this program raises carries its code already (`crate::error`), so an
//! error without one comes from async-graphql's checks of the client's document and
//! input, coded as Apollo codes them: a document that breaks a validation rule is
//! GRAPHQL_VALIDATION_FAILED, a wrong value given through a variable (or found while
//! executing) BAD_USER_INPUT, an `operationName` that selects nothing
//! OPERATION_RESOLUTION_FAILURE, a depth or complexity limit QUERY_TOO_COMPLEX.

use async_graphql::{Pos, Response, ServerError, Value};

use crate::error::Code;

/// What one of async-graphql's own error messages says, as far as this server acts
/// on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Said {
    /// A depth or complexity limit refused the document.
    Limit(Limit),
    /// A wrong value for this argument path (a literal, or a variable's value).
    Argument(String),
    /// A variable used with no value given (`Variable n is not defined.`).
    Unset(String),
    /// A variable used but not declared by the operation (a validation rule).
    Undeclared(String),
    /// `operationName` names no operation, or is missing where it is needed.
    Operation,
    /// An argument's value that did not convert while its field ran (an
    /// `InputValueError`): validation has passed, so a variable carried it.
    Conversion,
    Other,
}

/// The one place that reads async-graphql's wording. It reports its limit and
/// coercion errors as text only (`ServerError { message, .. }` with no kind; the
/// numbers stay inside `validation::check_rules`, see `src/validation/mod.rs` and
/// `rules/arguments_of_correct_type.rs` of async-graphql 7.2.1); no upstream issue
/// asks for typed validation errors yet. The tests below pin this wording to the
/// pinned version: an upgrade that changes it fails them.
pub(crate) fn said(message: &str) -> Said {
    match message {
        "Query is nested too deep." => return Said::Limit(Limit::Depth),
        "Query is too complex." => return Said::Limit(Limit::Complexity),
        m if m.starts_with("The recursion depth of the query cannot be greater than") => {
            return Said::Limit(Limit::Depth)
        }
        "Operation name required in request." => return Said::Operation,
        m if m.contains("(occurred while parsing \"")
            || m.starts_with("Failed to parse \"")
            || m.starts_with("Expected input type \"") =>
        {
            return Said::Conversion
        }
        m if m.starts_with("Unknown operation named \"") => return Said::Operation,
        _ => {}
    }
    // `Invalid value for argument "input.sourcestamps.0", …`
    if let Some(rest) = message.strip_prefix("Invalid value for argument \"") {
        return rest
            .split('"')
            .next()
            .map_or(Said::Other, |f| Said::Argument(f.to_owned()));
    }
    // `Variable "$n" is not defined …` (validation: not declared) or
    // `Variable n is not defined.` (a declared variable with no value).
    let Some(rest) = message.strip_prefix("Variable ") else {
        return Said::Other;
    };
    let name = rest
        .split(' ')
        .next()
        .unwrap_or_default()
        .trim_matches(|c| c == '"' || c == '$');
    if name.is_empty() {
        Said::Other
    } else if rest.starts_with("\"$") {
        Said::Undeclared(name.to_owned())
    } else {
        Said::Unset(name.to_owned())
    }
}

/// Which limit an async-graphql message reports, if any.
pub(crate) fn limit_of(message: &str) -> Option<Limit> {
    match said(message) {
        Said::Limit(limit) => Some(limit),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Depth,
    Complexity,
}

/// The code of one of async-graphql's own errors, and the argument or variable it
/// names. `from_variable` tells whether the argument at a position takes a variable.
fn code_for(err: &ServerError, from_variable: &dyn Fn(Pos) -> bool) -> (Code, Option<String>) {
    // An error with a path was raised while a field ran: an argument value that did
    // not convert, which only a variable's value can carry past validation.
    let executing = !err.path.is_empty();
    match said(&err.message) {
        Said::Limit(_) => (Code::QueryTooComplex, None),
        Said::Operation => (Code::OperationResolutionFailure, None),
        Said::Unset(name) => (Code::BadUserInput, Some(name)),
        Said::Undeclared(name) => (Code::ValidationFailed, Some(name)),
        Said::Argument(path) => {
            let variable = executing || err.locations.first().is_some_and(|p| from_variable(*p));
            let code = if variable {
                Code::BadUserInput
            } else {
                Code::ValidationFailed
            };
            (code, Some(path))
        }
        Said::Conversion => (Code::BadUserInput, None),
        Said::Other if executing => (Code::BadUserInput, None),
        Said::Other => (Code::ValidationFailed, None),
    }
}

/// Gives every error of `response` a code. Applied to the response rather than as a
/// schema extension: an extension puts every field resolution through its hook chain,
/// which measurably slows large pages.
pub fn with_codes(mut response: Response, from_variable: &dyn Fn(Pos) -> bool) -> Response {
    for err in &mut response.errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !has_code {
            let (code, field) = code_for(err, from_variable);
            let ext = err.extensions.get_or_insert_with(Default::default);
            ext.set("code", Value::from(code.as_str()));
            if let Some(field) = field {
                ext.set("field", Value::from(field));
            }
        }
        // A location at line 0 is async-graphql's "no position"; clients expect none.
        err.locations.retain(|p| p.line > 0);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::schema_builder;

    async fn first_error(query: &str, variables: serde_json::Value) -> ServerError {
        let schema = schema_builder().finish();
        let req = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        let mut r = with_codes(schema.execute(req).await, &|pos| {
            crate::door::nesting::argument_uses_variable(&doc, pos)
        });
        assert!(!r.errors.is_empty(), "{query}");
        r.errors.remove(0)
    }

    #[tokio::test]
    async fn async_graphql_operation_selection_messages_are_recognised() {
        // The wording `said` matches for OPERATION_RESOLUTION_FAILURE, from the library.
        let schema = schema_builder().finish();
        let two = "query A { __typename } query B { __typename }";
        for req in [
            async_graphql::Request::new(two),
            async_graphql::Request::new(two).operation_name("C"),
        ] {
            let r = schema.execute(req).await;
            assert_eq!(
                said(&r.errors[0].message),
                Said::Operation,
                "{:?}",
                r.errors
            );
        }
    }

    fn code_and_field(e: &ServerError) -> (String, String) {
        let ext = e.extensions.as_ref().expect("extensions");
        let s = |k: &str| {
            ext.get(k)
                .map(|v| v.to_string().trim_matches('"').to_owned())
        };
        (
            s("code").unwrap_or_default(),
            s("field").unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn async_graphql_limit_messages_are_recognised() {
        // The wording `limit_of` matches, taken from the library itself.
        for (builder, limit) in [
            (schema_builder().limit_depth(1), Limit::Depth),
            (schema_builder().limit_complexity(1), Limit::Complexity),
            (schema_builder().limit_recursive_depth(1), Limit::Depth),
        ] {
            let r = builder
                .finish()
                .execute("{ buildsets { nodes { bsid } } }")
                .await;
            assert_eq!(
                limit_of(&r.errors[0].message),
                Some(limit),
                "{:?}",
                r.errors
            );
        }
    }

    #[tokio::test]
    async fn async_graphql_errors_get_codes_and_fields() {
        let e = first_error(
            "query($n: Int!) { buildset(bsid: $n) { bsid } }",
            serde_json::json!({}),
        )
        .await;
        assert_eq!(
            code_and_field(&e),
            ("BAD_USER_INPUT".into(), "n".into()),
            "{}",
            e.message
        );
        let e = first_error("{ buildset(bsid: $n) { bsid } }", serde_json::json!({})).await;
        assert_eq!(
            code_and_field(&e),
            ("GRAPHQL_VALIDATION_FAILED".into(), "n".into()),
            "{}",
            e.message
        );
        let e = first_error(
            "query($n: Int!) { buildset(bsid: $n) { bsid } }",
            serde_json::json!({"n": "x"}),
        )
        .await;
        assert_eq!(
            code_and_field(&e),
            ("BAD_USER_INPUT".into(), "bsid".into()),
            "{}",
            e.message
        );
        // A wrong literal is the document's mistake, as graphql-js's validation says.
        let e = first_error("{ buildset(bsid: \"x\") { bsid } }", serde_json::json!({})).await;
        assert_eq!(
            code_and_field(&e),
            ("GRAPHQL_VALIDATION_FAILED".into(), "bsid".into()),
            "{}",
            e.message
        );
        let e = first_error(
            "query($n: Int!) { buildsets(where: {bsid: {in: [1, $n]}}) { totalCount } }",
            serde_json::json!({"n": "x"}),
        )
        .await;
        assert_eq!(code_and_field(&e).0, "BAD_USER_INPUT", "{}", e.message);
        let e = first_error("{ nope }", serde_json::json!({})).await;
        assert_eq!(
            code_and_field(&e).0,
            "GRAPHQL_VALIDATION_FAILED",
            "{}",
            e.message
        );
        assert!(e.locations.iter().all(|p| p.line > 0));
    }
}
