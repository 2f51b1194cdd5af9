//! What async-graphql 7.2 leaves out for `__typename`: its validation never visits
//! those fields (so `@evil`, a repeated `@skip`, a missing or mistyped `if` and an
//! undefined variable all ran), and it answers an object whose every field was
//! skipped with `null` instead of `{}` (so `{ __typename @skip(if: true) }` gave
//! `{"data": null}`, and a found object read as a missing one).

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Name, Pos, Positioned, Value};

/// The alias of the field added to selection sets whose every item is conditional,
/// so that their object is never empty; removed from the answer.
pub const KEEP: &str = "__bsgqlKeep";

/// The first argument given to a `__typename` field (it takes none), as GraphQL's
/// validation names it. Its directives are validated by async-graphql once
/// [`wrap_directives`] has moved them where its validation looks.
pub fn check(doc: &ExecutableDocument) -> Option<(String, Pos)> {
    let mut stack = super::nesting::top_sets(doc);
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    if f.node.name.node == "__typename" {
                        if let Some((name, _)) = f.node.arguments.first() {
                            return Some((
                                format!(
                                    "Unknown argument \"{}\" on field \"__typename\"",
                                    name.node
                                ),
                                name.pos,
                            ));
                        }
                    }
                    stack.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(f) => stack.push(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    None
}

/// Moves the directives of each `__typename` field onto an inline fragment around it
/// (`__typename @skip(if: $x)` is `... @skip(if: $x) { __typename }`, the same
/// answer): async-graphql validates an inline fragment's directives, and counts
/// their variables as used.
pub fn wrap_directives(doc: &mut ExecutableDocument) {
    use async_graphql::parser::types::InlineFragment;
    for set in sets_mut(doc) {
        let mut stack = vec![set];
        while let Some(set) = stack.pop() {
            for item in &mut set.items {
                let wrap = match &mut item.node {
                    Selection::Field(f) if f.node.name.node == "__typename" => {
                        !f.node.directives.is_empty()
                    }
                    _ => false,
                };
                if wrap {
                    let pos = item.pos;
                    let Selection::Field(mut field) = std::mem::replace(
                        &mut item.node,
                        Selection::InlineFragment(Positioned::new(
                            InlineFragment {
                                type_condition: None,
                                directives: Vec::new(),
                                selection_set: Positioned::new(SelectionSet::default(), pos),
                            },
                            pos,
                        )),
                    ) else {
                        continue;
                    };
                    let directives = std::mem::take(&mut field.node.directives);
                    if let Selection::InlineFragment(inline) = &mut item.node {
                        inline.node.directives = directives;
                        inline
                            .node
                            .selection_set
                            .node
                            .items
                            .push(Positioned::new(Selection::Field(field), pos));
                    }
                    continue;
                }
                match &mut item.node {
                    Selection::Field(f) => stack.push(&mut f.node.selection_set.node),
                    Selection::InlineFragment(f) => stack.push(&mut f.node.selection_set.node),
                    Selection::FragmentSpread(_) => {}
                }
            }
        }
    }
}

/// The top selection set of every operation and fragment.
fn sets_mut(doc: &mut ExecutableDocument) -> Vec<&mut SelectionSet> {
    use async_graphql::parser::types::DocumentOperations;
    let mut sets: Vec<&mut SelectionSet> = match &mut doc.operations {
        DocumentOperations::Single(op) => vec![&mut op.node.selection_set.node],
        DocumentOperations::Multiple(ops) => ops
            .values_mut()
            .map(|op| &mut op.node.selection_set.node)
            .collect(),
    };
    sets.extend(
        doc.fragments
            .values_mut()
            .map(|f| &mut f.node.selection_set.node),
    );
    sets
}

/// Adds the [`KEEP`] field to every selection set whose items all carry `@skip` or
/// `@include`; true when it added one (the answer must then lose it again).
pub fn keep_conditional_sets(doc: &mut ExecutableDocument) -> bool {
    let mut added = false;
    let mut stack = sets_mut(doc);
    while let Some(set) = stack.pop() {
        let conditional = !set.items.is_empty()
            && set.items.iter().all(|item| {
                let directives = match &item.node {
                    Selection::Field(f) => &f.node.directives,
                    Selection::InlineFragment(f) => &f.node.directives,
                    Selection::FragmentSpread(s) => &s.node.directives,
                };
                directives
                    .iter()
                    .any(|d| matches!(d.node.name.node.as_str(), "skip" | "include"))
            });
        let pos = set.items.first().map(|i| i.pos).unwrap_or_default();
        if conditional {
            added = true;
            set.items.push(Positioned::new(
                Selection::Field(Positioned::new(
                    Field {
                        alias: Some(Positioned::new(Name::new(KEEP), pos)),
                        name: Positioned::new(Name::new("__typename"), pos),
                        arguments: Vec::new(),
                        directives: Vec::new(),
                        selection_set: Positioned::new(SelectionSet::default(), pos),
                    },
                    pos,
                )),
                pos,
            ));
        }
        for item in &mut set.items {
            match &mut item.node {
                Selection::Field(f) => {
                    if !f.node.selection_set.node.items.is_empty() {
                        stack.push(&mut f.node.selection_set.node);
                    }
                }
                Selection::InlineFragment(f) => stack.push(&mut f.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    added
}

/// Removes the [`KEEP`] fields from an answer.
pub fn strip(data: &mut Value) {
    let mut stack = vec![data];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                map.shift_remove(KEEP);
                stack.extend(map.values_mut());
            }
            Value::List(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}
