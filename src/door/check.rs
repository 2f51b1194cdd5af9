//! The checks that depend on the query text and operation name alone, and the
//! parse: their outcome is kept in the door's cache for the next request with that
//! text. Each bound is checked before the work it bounds: the text before the
//! parser, the whole document before async-graphql's validation.

use async_graphql::parser::types::{ExecutableDocument, OperationDefinition, OperationType};
use async_graphql::parser::Error as ParseError;
use async_graphql::Value;

use super::answer::{error_answer, invalid, unparsable};
use super::expansion::{document_expansion, Expansion};
use super::{nesting, typename, weight, wide, Answer, Status};
use crate::config::Limits;
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
        Status::RequestError,
        Code::QueryTooComplex,
        message,
        None,
        &[("limit", Value::from(limit)), ("found", Value::from(found))],
    )
}

// The refusal is the answer itself, built once and moved once; boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(super) fn check_text(
    bounds: &Limits,
    query: &str,
    operation: Option<&str>,
) -> Result<Checked, Answer> {
    check_raw(bounds, query)?;
    let mut doc = async_graphql::parser::parse_query(query)
        .map_err(|e| unparsable(syntax_error(&e, query), e.positions().next()))?;
    check_expansion(bounds, &doc)?;
    let selected = selected_operation(&doc, operation);
    if let Some(op) = selected {
        check_operation(bounds, &doc, op)?;
    }
    let kind = selected.map(|op| op.ty);
    if let Some((message, pos)) = typename::check(&doc) {
        return Err(invalid(message, Some(pos)));
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

/// The bounds on the text itself, before the parser sees it.
#[allow(clippy::result_large_err)]
fn check_raw(bounds: &Limits, query: &str) -> Result<(), Answer> {
    if let Some(pos) = nesting::text_too_deep(query, bounds.max_nesting) {
        return Err(unparsable(
            format!(
                "the document nests deeper than {} levels of brackets (--max-nesting)",
                bounds.max_nesting
            ),
            Some(pos),
        ));
    }
    let tokens = nesting::token_count(query, bounds.max_tokens);
    if tokens > bounds.max_tokens {
        return Err(too_complex(
            format!(
                "the document holds more than {} tokens (--max-tokens); pass long lists as variables",
                bounds.max_tokens
            ),
            bounds.max_tokens,
            tokens,
        ));
    }
    match wide::in_graphql(query) {
        Some(pos) => Err(invalid(
            "an integer literal beyond 64 bits cannot be held exactly; send it as a string",
            Some(pos),
        )),
        None => Ok(()),
    }
}

/// async-graphql's validation visits every operation and fragment of the document
/// with its spreads inlined, selected or not: the whole document is bounded before
/// it gets there (and so is the selected operation, a part of it).
#[allow(clippy::result_large_err)]
fn check_expansion(bounds: &Limits, doc: &ExecutableDocument) -> Result<(), Answer> {
    match document_expansion(doc, bounds.max_selections) {
        Expansion::Cycle(name) => Err(invalid(
            format!("Cannot spread fragment \"{name}\" within itself: fragments must not form cycles"),
            doc.fragments.get(name.as_str()).map(|f| f.pos),
        )),
        Expansion::Size(found) if found > bounds.max_selections => Err(too_complex(
            format!(
                "the document has more than {} selections once its fragments are expanded, counting every operation and fragment in it, selected or not (--max-selections)",
                bounds.max_selections
            ),
            bounds.max_selections,
            found,
        )),
        Expansion::Size(_) => Ok(()),
    }
}

/// The bounds on the selected operation: its root fields, and a subscription's
/// selections and single root field.
#[allow(clippy::result_large_err)]
fn check_operation(
    bounds: &Limits,
    doc: &ExecutableDocument,
    op: &OperationDefinition,
) -> Result<(), Answer> {
    let roots = nesting::root_fields(doc, &op.selection_set.node, bounds.max_selections);
    if roots > bounds.max_root_fields {
        return Err(too_complex(
            format!(
                "the operation has more than {} root fields once its fragments are expanded (found {roots})",
                bounds.max_root_fields
            ),
            bounds.max_root_fields,
            roots,
        ));
    }
    if op.ty != OperationType::Subscription {
        return Ok(());
    }
    let max = bounds.max_subscription_selections;
    let found = nesting::selections(doc, &op.selection_set.node, max);
    if found > max {
        return Err(too_complex(
            format!("the subscription selects more than {max} fields once its fragments are expanded (--max-subscription-selections): every event is answered for it"),
            max,
            found,
        ));
    }
    if roots != 1 {
        return Err(invalid(
            format!("a subscription selects exactly one root field; this one selects {roots}: send one subscription per field"),
            Some(op.selection_set.pos),
        ));
    }
    Ok(())
}

/// A parse error as one sentence with its place: the parser's own text for a
/// syntax error is a drawing of the line with arrows under it, for terminals.
pub(super) fn syntax_error(error: &ParseError, query: &str) -> String {
    match error {
        ParseError::Syntax { start, .. } => {
            let line = &query[line_start(query, start.line)..];
            let at = line
                .char_indices()
                .nth(start.column.saturating_sub(1))
                .map_or(line.len(), |(i, _)| i);
            let rest = &line[at..];
            let found = match rest.chars().next() {
                _ if rest.trim().is_empty() => "unexpected end of the document".to_owned(),
                Some(c) if !c.is_whitespace() => format!("unexpected `{c}`"),
                _ => "unexpected input".to_owned(),
            };
            format!(
                "Syntax error at line {}, column {}: {found}",
                start.line, start.column
            )
        }
        other => format!("The document is not valid GraphQL: {other}"),
    }
}

/// The byte offset where line `line` (1-based) starts.
fn line_start(text: &str, line: usize) -> usize {
    text.split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        .min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(query: &str) -> String {
        let e = async_graphql::parser::parse_query(query).expect_err(query);
        syntax_error(&e, query)
    }

    #[test]
    fn syntax_errors_are_one_sentence_with_their_place() {
        assert_eq!(
            message("{ builders { "),
            "Syntax error at line 1, column 14: unexpected end of the document"
        );
        assert_eq!(
            message("{\n  a(x: )\n}"),
            "Syntax error at line 2, column 8: unexpected `)`"
        );
        assert_eq!(
            message("query { }"),
            "Syntax error at line 1, column 9: unexpected `}`"
        );
        assert_eq!(
            message("query A { a } query A { a }"),
            "The document is not valid GraphQL: operation A is defined twice"
        );
    }
}
