//! Every check before execution, in order: tokens, integers beyond 64 bits, the
//! text (cached with its parse), variables, value nesting and list lengths, and the
//! write rule for mutations.

use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Value, Variables};
use axum::http::StatusCode;

use super::answer::{bad_input, error_answer};
use super::check::Checked;
use super::persisted::{not_in_list, only_introspects, Trust};
use super::{nesting, Answer, Caller, Door, Refusal, Status, Transport, WIDE_INTEGER};
use crate::config::Limits;
use crate::error::Code;

impl Door {
    /// Every check before execution.
    // The refusal is the answer itself, built once and moved once; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    pub(super) fn prepare(
        &self,
        mut request: Request,
        caller: &Caller,
        transport: Transport,
    ) -> Result<Prepared, Answer> {
        self.admit(caller).map_err(Refusal::answer)?;
        if let Some(path) = request.extensions.get(WIDE_INTEGER) {
            return Err(too_wide(path));
        }
        let trust = self.0.documents.resolve(&mut request)?;
        let operation = request.operation_name.clone();
        let checked = self
            .0
            .known
            .checked(&self.0.bounds, &request.query, operation.as_deref())?;
        let doc = &checked.doc;
        if trust == Trust::IntrospectionOnly && !only_introspects(doc, operation.as_deref()) {
            return Err(not_in_list());
        }
        if let Some(refusal) = check_variables(
            doc,
            operation.as_deref(),
            &request.variables,
            &self.0.bounds,
        ) {
            return Err(refusal);
        }
        let kind = checked.kind;
        if kind == Some(OperationType::Mutation) {
            if transport == Transport::Get {
                return Err(Refusal::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    Code::BadRequest,
                    "mutations must be sent with POST",
                )
                .answer());
            }
            self.0.keys.admit_write(caller).map_err(Refusal::answer)?;
        }
        request.set_parsed_query(doc.clone());
        let shape = Arc::new(Shape {
            checked,
            operation,
            variables: request.variables.clone(),
        });
        Ok(Prepared {
            request,
            shape,
            kind,
        })
    }
}

/// The refusal of an integer beyond 64 bits, found at `path` of the raw text.
fn too_wide(path: &Value) -> Answer {
    let path = match path {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    bad_input(
        &path,
        format!("`{path}` is an integer beyond 64 bits, which JSON numbers here cannot hold exactly; send it as a string"),
        None,
    )
}

/// The checks of the variables and argument values: present when required, not
/// nested too deep, lists within their bounds.
fn check_variables(
    doc: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Variables,
    bounds: &Limits,
) -> Option<Answer> {
    if let Some(missing) = missing_variable(doc, operation, variables) {
        return Some(missing);
    }
    if let Some(field) = nesting::value_too_deep(doc, variables, bounds.max_value_nesting) {
        return Some(bad_input(
            &field,
            format!(
                "`{field}` nests deeper than {} levels of lists and objects (--max-value-nesting)",
                bounds.max_value_nesting
            ),
            None,
        ));
    }
    let (field, len, max) = nesting::list_too_long(
        doc,
        variables,
        // The longest list of objects (an `addBuildset` list, or `and` / `or`)
        // and of scalars (`in`, `builderids`) that could pass its own bound.
        bounds.max_input_list.max(bounds.max_where_conditions),
        bounds.max_input_list.max(bounds.max_where_values),
    )?;
    Some(error_answer(
        Status::RequestError,
        Code::BadUserInput,
        format!("`{field}` holds a list of {len} items; at most {max} are allowed"),
        None,
        &[
            ("field", Value::from(field.clone())),
            ("limit", Value::from(max)),
            ("found", Value::from(len)),
        ],
    ))
}

/// A non-null variable without a value nor a default: GraphQL's variable coercion
/// fails before execution (async-graphql finds it only when a field reads it, and
/// reports it as that field's error).
fn missing_variable(
    doc: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Variables,
) -> Option<Answer> {
    let op = crate::graphql::order::selected_operation(doc, operation)?;
    let missing = op.variable_definitions.iter().find(|v| {
        let v = &v.node;
        !v.var_type.node.nullable
            && v.default_value.is_none()
            && matches!(variables.get(&v.name.node), None | Some(Value::Null))
    })?;
    let name = missing.node.name.node.as_str();
    Some(bad_input(
        name,
        format!(
            "Variable `${name}` of type `{}` must be given a value",
            missing.node.var_type.node
        ),
        Some(missing.pos),
    ))
}

/// What a response is shaped by: the parsed document, the operation and variables.
pub(super) struct Shape {
    pub(super) checked: Arc<Checked>,
    pub(super) operation: Option<String>,
    variables: Variables,
}

impl Shape {
    /// The request again, for the measuring twin; it runs the parsed document, the
    /// text is not read again.
    pub(super) fn twin(&self) -> Request {
        let mut again = Request::new(String::new()).variables(self.variables.clone());
        again.operation_name = self.operation.clone();
        again.set_parsed_query(self.checked.doc.clone());
        again
    }
}

/// An operation that passed every check, parsed.
pub(super) struct Prepared {
    pub(super) request: Request,
    pub(super) shape: Arc<Shape>,
    pub(super) kind: Option<OperationType>,
}
