//! What a parsed document holds in memory, for the weight of the parse cache. The
//! text alone misjudges it both ways: a dense document (a long list of small values)
//! parses to tens of bytes per byte of text, and a tiny one still costs a document,
//! a key and an entry.

use std::mem::size_of;

use async_graphql::parser::types::{
    BaseType, Directive, ExecutableDocument, FragmentDefinition, OperationDefinition, Selection,
    SelectionSet, Type, VariableDefinition,
};
use async_graphql::{Name, Positioned};
use async_graphql_value::{ConstValue, Value};

/// A vector grown by pushing holds up to twice its length.
const SLACK: usize = 2;
/// What one entry of the cache costs besides its document: the key's two strings'
/// headers, the `Arc`, the cache's own node and hash slot, the hash maps' tables.
const ENTRY: usize = 640;

/// Bytes the cache entry for `query` / `operation`, parsed as `doc`, keeps alive.
pub fn cached_bytes(query: &str, operation: Option<&str>, doc: &ExecutableDocument) -> u64 {
    let mut bytes =
        ENTRY + query.len() + operation.map_or(0, str::len) + size_of::<ExecutableDocument>();
    let mut sets: Vec<&SelectionSet> = Vec::new();
    for (name, op) in doc.operations.iter() {
        bytes += size_of::<(Name, Positioned<OperationDefinition>)>() + 16;
        bytes += name.map_or(0, name_bytes);
        bytes += operation_bytes(&op.node);
        sets.push(&op.node.selection_set.node);
    }
    for (name, f) in &doc.fragments {
        bytes += size_of::<(Name, Positioned<FragmentDefinition>)>() + 16;
        bytes += name_bytes(name) + name_bytes(&f.node.type_condition.node.on.node);
        bytes += directives_bytes(&f.node.directives);
        sets.push(&f.node.selection_set.node);
    }
    while let Some(set) = sets.pop() {
        bytes += set.items.len() * size_of::<Positioned<Selection>>() * SLACK;
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    bytes += name_bytes(&f.name.node);
                    bytes += f.alias.as_ref().map_or(0, |a| name_bytes(&a.node));
                    bytes += arguments_bytes(&f.arguments);
                    bytes += directives_bytes(&f.directives);
                    sets.push(&f.selection_set.node);
                }
                Selection::FragmentSpread(s) => {
                    bytes += name_bytes(&s.node.fragment_name.node);
                    bytes += directives_bytes(&s.node.directives);
                }
                Selection::InlineFragment(f) => {
                    bytes += f
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(0, |t| name_bytes(&t.node.on.node));
                    bytes += directives_bytes(&f.node.directives);
                    sets.push(&f.node.selection_set.node);
                }
            }
        }
    }
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// A name is an `Arc<str>`: two counters and the text, in an allocation of its own.
fn name_bytes(name: &Name) -> usize {
    (16 + name.len()).next_multiple_of(16)
}

fn operation_bytes(op: &OperationDefinition) -> usize {
    let vars: usize = op
        .variable_definitions
        .iter()
        .map(|v| size_of::<Positioned<VariableDefinition>>() * SLACK + variable_bytes(&v.node))
        .sum();
    vars + directives_bytes(&op.directives)
}

fn variable_bytes(v: &VariableDefinition) -> usize {
    name_bytes(&v.name.node)
        + type_bytes(&v.var_type.node)
        + directives_bytes(&v.directives)
        + v.default_value.as_ref().map_or(0, |d| const_bytes(&d.node))
}

fn type_bytes(t: &Type) -> usize {
    match &t.base {
        BaseType::Named(n) => name_bytes(n),
        BaseType::List(inner) => size_of::<Type>() + type_bytes(inner),
    }
}

fn directives_bytes(directives: &[Positioned<Directive>]) -> usize {
    directives
        .iter()
        .map(|d| {
            size_of::<Positioned<Directive>>() * SLACK
                + name_bytes(&d.node.name.node)
                + arguments_bytes(&d.node.arguments)
        })
        .sum()
}

fn arguments_bytes(args: &[(Positioned<Name>, Positioned<Value>)]) -> usize {
    args.iter()
        .map(|(name, value)| {
            size_of::<(Positioned<Name>, Positioned<Value>)>() * SLACK
                + name_bytes(&name.node)
                + value_bytes(&value.node)
        })
        .sum()
}

/// The heap a value owns besides its own slot (its nesting is bounded by the
/// document's, checked before parsing).
fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Variable(n) | Value::Enum(n) => name_bytes(n),
        Value::String(s) => s.len(),
        Value::Binary(b) => b.len(),
        Value::List(items) => items
            .iter()
            .map(|i| size_of::<Value>() * SLACK + value_bytes(i))
            .sum(),
        Value::Object(map) => map
            .iter()
            .map(|(k, i)| (size_of::<(Name, Value)>() + 8) * SLACK + name_bytes(k) + value_bytes(i))
            .sum(),
        Value::Null | Value::Number(_) | Value::Boolean(_) => 0,
    }
}

fn const_bytes(v: &ConstValue) -> usize {
    match v {
        ConstValue::Enum(n) => name_bytes(n),
        ConstValue::String(s) => s.len(),
        ConstValue::Binary(b) => b.len(),
        ConstValue::List(items) => items
            .iter()
            .map(|i| size_of::<ConstValue>() * SLACK + const_bytes(i))
            .sum(),
        ConstValue::Object(map) => map
            .iter()
            .map(|(k, i)| {
                (size_of::<(Name, ConstValue)>() + 8) * SLACK + name_bytes(k) + const_bytes(i)
            })
            .sum(),
        ConstValue::Null | ConstValue::Number(_) | ConstValue::Boolean(_) => 0,
    }
}
