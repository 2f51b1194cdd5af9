//! The checks that depend on the query text and operation name alone, and the
//! parse: their outcome is kept in the door's cache for the next request with that
//! text. Each bound is checked before the work it bounds: the text before the
//! parser, the whole document before async-graphql's validation.

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Response, ServerError, Value};
use axum::http::StatusCode;

use super::expansion::{document_expansion, Expansion};
use super::{bad_input, error_answer, nesting, typename, weight, wide, Answer, Bounds};
use crate::error::Code;
use crate::graphql::order::selected_operation;

/// A query text that passed the checks depending on its text alone, parsed. Kept so
/// that the usual client, one query text sent again and again with new variables, is
/// not parsed and scanned again.
pub(super) struct Checked {
    pub(super) doc: ExecutableDocument,
    pub(super) kind: Option<OperationType>,
    /// What its cache entry keeps alive, key included ([`weight::cached_bytes`]).
    pub(super) weight: u64,
    /// Whether [`typename::KEEP`] fields were added, to be removed from answers.
    pub(super) kept: bool,
}

/// `QUERY_TOO_COMPLEX` naming the bound and what was found.
fn too_complex(message: String, limit: usize, found: usize) -> Answer {
    error_answer(
        StatusCode::OK,
        Code::QueryTooComplex,
        message,
        None,
        &[("limit", Value::from(limit)), ("found", Value::from(found))],
    )
}

#[allow(clippy::result_large_err)]
pub(super) fn check_text(
    bounds: &Bounds,
    query: &str,
    operation: Option<&str>,
) -> Result<Checked, Answer> {
    if let Some(pos) = nesting::text_too_deep(query, bounds.nesting) {
        return Err(bad_input(
            "query",
            format!(
                "the document nests deeper than {} levels of brackets (--max-nesting)",
                bounds.nesting
            ),
            Some(pos),
        ));
    }
    let tokens = nesting::token_count(query, bounds.tokens);
    if tokens > bounds.tokens {
        return Err(too_complex(
            format!(
                "the document holds more than {} tokens (--max-tokens); pass long lists as variables",
                bounds.tokens
            ),
            bounds.tokens,
            tokens,
        ));
    }
    if let Some(pos) = wide::in_graphql(query) {
        return Err(bad_input(
            "query",
            "an integer literal beyond 64 bits cannot be held exactly; send it as a string",
            Some(pos),
        ));
    }
    let mut doc = match async_graphql::parser::parse_query(query) {
        Ok(doc) => doc,
        Err(e) => {
            let mut err = ServerError::from(e);
            err.extensions
                .get_or_insert_with(Default::default)
                .set("code", Value::from(Code::BadUserInput.as_str()));
            return Err(Answer {
                status: StatusCode::OK,
                response: Response::from_errors(vec![err]),
            });
        }
    };
    // async-graphql's validation visits every operation and fragment of the
    // document with its spreads inlined, selected or not: the whole document is
    // bounded before it gets there (and so is the selected operation, a part of it).
    match document_expansion(&doc, bounds.selections) {
        Expansion::Cycle(name) => {
            return Err(bad_input(
                "query",
                format!("Cannot spread fragment \"{name}\" within itself: fragments must not form cycles"),
                doc.fragments.get(name.as_str()).map(|f| f.pos),
            ));
        }
        Expansion::Size(found) if found > bounds.selections => {
            return Err(too_complex(
                format!(
                    "the document has more than {} selections once its fragments are expanded, counting every operation and fragment in it, selected or not (--max-selections)",
                    bounds.selections
                ),
                bounds.selections,
                found,
            ));
        }
        Expansion::Size(_) => {}
    }
    let selected = selected_operation(&doc, operation);
    if let Some(op) = selected {
        let roots = nesting::root_fields(&doc, &op.selection_set.node, bounds.selections);
        if roots > bounds.root_fields {
            return Err(too_complex(
                format!(
                    "the operation has more than {} root fields once its fragments are expanded (found {roots})",
                    bounds.root_fields
                ),
                bounds.root_fields,
                roots,
            ));
        }
        if op.ty == OperationType::Subscription {
            let max = bounds.subscription_selections;
            let found = nesting::selections(&doc, &op.selection_set.node, max);
            if found > max {
                return Err(too_complex(
                    format!("the subscription selects more than {max} fields once its fragments are expanded (--max-subscription-selections): every event is answered for it"),
                    max,
                    found,
                ));
            }
            if roots != 1 {
                return Err(bad_input(
                    "query",
                    format!("a subscription selects exactly one root field; this one selects {roots}: send one subscription per field"),
                    Some(op.selection_set.pos),
                ));
            }
        }
    }
    let kind = selected.map(|op| op.ty);
    if let Some((message, pos)) = typename::check(&doc) {
        return Err(bad_input("query", message, Some(pos)));
    }
    typename::wrap_directives(&mut doc);
    let kept = typename::keep_conditional_sets(&mut doc);
    let weight = weight::cached_bytes(query, operation, &doc);
    Ok(Checked {
        doc,
        kind,
        weight,
        kept,
    })
}
