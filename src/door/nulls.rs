//! A field that errors is null, and a non-null one's null goes up to the nearest
//! nullable parent (GraphQL spec, "Handling Field Errors"). async-graphql records the
//! error but leaves the field out of its object
//! (`resolver_utils::container::do_resolve_container` drops an `Err` field; see
//! https://github.com/async-graphql/async-graphql/issues/531), which clients read as a
//! missing field: Apollo Client drops the whole object. The door puts the nulls
//! back, from each error's path and the schema's types.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationType, Selection, SelectionSet, Type, TypeKind,
};
use async_graphql::{PathSegment, ServerError, Value};

use crate::graphql::order::selected_operation;

/// The declared type of every field of every object and interface type.
pub struct FieldTypes(HashMap<String, HashMap<String, Type>>);

impl FieldTypes {
    /// Read from the schema's SDL (`schema.graphql`).
    pub fn from_sdl(sdl: &str) -> FieldTypes {
        let mut types = HashMap::new();
        let Ok(doc) = async_graphql::parser::parse_schema(sdl) else {
            return FieldTypes(types);
        };
        for def in doc.definitions {
            let async_graphql::parser::types::TypeSystemDefinition::Type(ty) = def else {
                continue;
            };
            let fields = match &ty.node.kind {
                TypeKind::Object(o) => &o.fields,
                TypeKind::Interface(i) => &i.fields,
                _ => continue,
            };
            let fields = fields
                .iter()
                .map(|f| (f.node.name.node.to_string(), f.node.ty.node.clone()))
                .collect();
            types.insert(ty.node.name.node.to_string(), fields);
        }
        FieldTypes(types)
    }

    fn field(&self, parent: &str, name: &str) -> Option<&Type> {
        self.0.get(parent)?.get(name)
    }
}

/// Sets every errored field of `data` to null, and propagates the nulls of non-null
/// fields and list items to their nearest nullable ancestor.
pub fn null_errored_fields(
    data: &mut Value,
    errors: &[ServerError],
    doc: &ExecutableDocument,
    operation: Option<&str>,
    types: &FieldTypes,
) {
    let Some(op) = selected_operation(doc, operation) else {
        return;
    };
    let root = match op.ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    };
    let mut nulled: Vec<&[PathSegment]> = Vec::new();
    for error in errors.iter().filter(|e| !e.path.is_empty()) {
        let path = error.path.as_slice();
        if nulled.iter().any(|n| path.starts_with(n)) {
            continue;
        }
        let Some(non_null) = non_null_at(doc, &op.selection_set.node, root, path, types) else {
            continue;
        };
        // The position that becomes null: the error's, or its nearest nullable
        // ancestor's (the root, `data` itself, when there is none).
        let depth = non_null.iter().rposition(|n| !n).map_or(0, |i| i + 1);
        set_null(data, &path[..depth]);
        nulled.push(&path[..depth]);
    }
}

/// Whether each position along `path` is of a non-null type; `None` when the path
/// does not follow the operation (then nothing is changed).
fn non_null_at(
    doc: &ExecutableDocument,
    root_set: &SelectionSet,
    root: &str,
    path: &[PathSegment],
    types: &FieldTypes,
) -> Option<Vec<bool>> {
    let mut sets: Vec<&SelectionSet> = vec![root_set];
    let mut parent = root.to_owned();
    let mut ty: Option<&Type> = None;
    let mut out = Vec::with_capacity(path.len());
    for segment in path {
        match segment {
            PathSegment::Field(key) => {
                let mut found = Vec::new();
                for set in &sets {
                    fields_at(doc, set, key, &parent, &mut found);
                }
                let (name, owner, _) = found.first()?;
                let field_ty = types
                    .field(owner, name)
                    .or_else(|| types.field(&parent, name))?;
                out.push(!field_ty.nullable);
                sets = found.iter().map(|(_, _, set)| *set).collect();
                parent = named(field_ty).to_owned();
                ty = Some(field_ty);
            }
            PathSegment::Index(_) => {
                let BaseType::List(item) = &ty?.base else {
                    return None;
                };
                out.push(!item.nullable);
                ty = Some(item);
            }
        }
    }
    Some(out)
}

/// The fields of `set` (fragments included) answered under response key `key`: their
/// name, the type they are selected on, and their sub-selection.
fn fields_at<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    key: &str,
    on: &str,
    found: &mut Vec<(String, String, &'a SelectionSet)>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) if f.node.response_key().node.as_str() == key => {
                found.push((
                    f.node.name.node.to_string(),
                    on.to_owned(),
                    &f.node.selection_set.node,
                ));
            }
            Selection::Field(_) => {}
            Selection::InlineFragment(frag) => {
                let on = frag
                    .node
                    .type_condition
                    .as_ref()
                    .map_or(on, |c| c.node.on.node.as_str());
                fields_at(doc, &frag.node.selection_set.node, key, on, found);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(frag) = doc.fragments.get(&spread.node.fragment_name.node) {
                    let on = frag.node.type_condition.node.on.node.as_str();
                    fields_at(doc, &frag.node.selection_set.node, key, on, found);
                }
            }
        }
    }
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(item) => named(item),
    }
}

/// Sets the value at `path` to null, making the objects on the way where
/// async-graphql left none (an object whose every field errored comes back null).
fn set_null(data: &mut Value, path: &[PathSegment]) {
    let Some((last, above)) = path.split_last() else {
        *data = Value::Null;
        return;
    };
    let mut at = data;
    for segment in above {
        at = match (segment, object_for(segment, at)) {
            (PathSegment::Field(key), Value::Object(map)) => map
                .entry(async_graphql::Name::new(key))
                .or_insert(Value::Null),
            (PathSegment::Index(i), Value::List(items)) => match items.get_mut(*i) {
                Some(item) => item,
                None => return,
            },
            _ => return,
        };
    }
    match (last, object_for(last, at)) {
        (PathSegment::Field(key), Value::Object(map)) => {
            map.insert(async_graphql::Name::new(key), Value::Null);
        }
        (PathSegment::Index(i), Value::List(items)) => {
            if let Some(item) = items.get_mut(*i) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

/// `at`, made an empty object when it is null and `segment` names a field in it (a
/// list cannot be made again: its null stays).
fn object_for<'a>(segment: &PathSegment, at: &'a mut Value) -> &'a mut Value {
    if matches!(segment, PathSegment::Field(_)) && matches!(at, Value::Null) {
        *at = Value::Object(Default::default());
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{value, Pos};

    const SDL: &str = "type Query { a: A, b: B!, list: [B!], items: [B]! }\n\
                       type A { x: Int, y: Int!, b: B! }\n\
                       type B { z: Int! }";

    fn run(query: &str, mut data: Value, paths: &[&[PathSegment]]) -> Value {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        let errors: Vec<ServerError> = paths
            .iter()
            .map(|p| {
                let mut e = ServerError::new("boom", Some(Pos::default()));
                e.path = p.to_vec();
                e
            })
            .collect();
        null_errored_fields(&mut data, &errors, &doc, None, &FieldTypes::from_sdl(SDL));
        data
    }

    fn f(key: &str) -> PathSegment {
        PathSegment::Field(key.into())
    }

    #[test]
    fn a_nullable_field_becomes_null() {
        let out = run(
            "{ a { y x } }",
            value!({"a": {"y": 1}}),
            &[&[f("a"), f("x")]],
        );
        assert_eq!(out, value!({"a": {"y": 1, "x": null}}));
    }

    #[test]
    fn a_non_null_field_nulls_its_nullable_parent() {
        let out = run(
            "{ a { x y } }",
            value!({"a": {"x": 1}}),
            &[&[f("a"), f("y")]],
        );
        assert_eq!(out, value!({"a": null}));
        let out = run(
            "{ a { b { z } } }",
            value!({"a": {}}),
            &[&[f("a"), f("b"), f("z")]],
        );
        assert_eq!(out, value!({"a": null}));
    }

    #[test]
    fn inside_lists_and_up_to_data() {
        let out = run(
            "{ list { z } }",
            value!({"list": [{"z": 1}, {}]}),
            &[&[f("list"), PathSegment::Index(1), f("z")]],
        );
        assert_eq!(out, value!({"list": null}));
        let out = run(
            "{ items { z } }",
            value!({"items": [{"z": 1}, {}]}),
            &[&[f("items"), PathSegment::Index(1), f("z")]],
        );
        assert_eq!(out, value!({"items": [{"z": 1}, null]}));
        let out = run("{ b { z } }", Value::Null, &[&[f("b"), f("z")]]);
        assert_eq!(out, Value::Null);
        // A list async-graphql left out stays out of reach: null, not an object.
        let out = run(
            "{ items { z } }",
            value!({}),
            &[&[f("items"), PathSegment::Index(0), f("z")]],
        );
        assert_eq!(out, value!({"items": null}));
    }

    #[test]
    fn aliases_and_fragments_are_followed() {
        let out = run(
            "{ first: a { ...F } } fragment F on A { other: y }",
            value!({"first": {}}),
            &[&[f("first"), f("other")]],
        );
        assert_eq!(out, value!({"first": null}));
        let out = run(
            "{ a { ... on A { x } } }",
            Value::Null,
            &[&[f("a"), f("x")]],
        );
        assert_eq!(out, value!({"a": {"x": null}}));
    }
}
