//! Two answers of async-graphql 7.2.1's introspection corrected: `__schema {
//! description }` is its meta-type's own text ("A GraphQL Schema defines the
//! capabilities…", hard-coded in `model/schema.rs`), which `printSchema
//! (buildClientSchema(…))` then prints as this schema's description; and `Float`, a
//! built-in scalar it always registers, is listed in `__schema { types }` though no
//! field uses it. Both are put right in the answer, where the operation asks for them.

use async_graphql::parser::types::{ExecutableDocument, Field, SelectionSet};
use async_graphql::Value;

use crate::graphql::SCHEMA_DESCRIPTION;

/// Built-in types no field of this schema uses.
const UNUSED: &[&str] = &["Float"];

/// Corrects every `__schema` of the selected operation's answer.
pub fn correct(data: &mut Value, doc: &ExecutableDocument, operation: Option<&str>) {
    let Some(op) = crate::graphql::order::selected_operation(doc, operation) else {
        return;
    };
    let Value::Object(top) = data else {
        return;
    };
    for schema in fields(doc, &op.selection_set.node, "__schema") {
        let Some(Value::Object(answer)) = top.get_mut(key(schema)) else {
            continue;
        };
        for description in fields(doc, &schema.selection_set.node, "description") {
            if let Some(v) = answer.get_mut(key(description)) {
                *v = Value::from(SCHEMA_DESCRIPTION);
            }
        }
        for types in fields(doc, &schema.selection_set.node, "types") {
            let names: Vec<&str> = fields(doc, &types.selection_set.node, "name")
                .into_iter()
                .map(key)
                .collect();
            if let Some(Value::List(list)) = answer.get_mut(key(types)) {
                list.retain(|t| !is_unused(t, &names));
            }
        }
    }
}

fn is_unused(ty: &Value, name_keys: &[&str]) -> bool {
    let Value::Object(ty) = ty else {
        return false;
    };
    name_keys
        .iter()
        .any(|k| matches!(ty.get(*k), Some(Value::String(name)) if UNUSED.contains(&name.as_str())))
}

/// The response key of a field.
fn key(field: &Field) -> &str {
    field.alias.as_ref().map_or(&field.name.node, |a| &a.node)
}

/// The fields named `name` of a selection set, through its fragments.
fn fields<'a>(doc: &'a ExecutableDocument, set: &'a SelectionSet, name: &str) -> Vec<&'a Field> {
    let mut found = super::nesting::fields_of(doc, set);
    found.retain(|f| f.name.node == name);
    found
}
