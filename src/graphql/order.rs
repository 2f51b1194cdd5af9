//! Puts every object of a response in the order its fields appear in the query, as
//! the GraphQL spec asks (§7.2.2). async-graphql resolves the fields of an object
//! concurrently and keeps them in the order they finish, so without this two runs
//! of one query can answer `{"a", "b"}` and `{"b", "a"}`.

use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Value};

/// The operation a request runs: the one named, or the only one.
pub fn selected_operation<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    let mut ops = doc.operations.iter();
    match name {
        Some(wanted) => ops
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == wanted))
            .map(|(_, op)| &op.node),
        None => {
            let (_, first) = ops.next()?;
            ops.next().is_none().then_some(&first.node)
        }
    }
}

/// Reorders `data`, the result of running `operation` of `doc`.
pub fn in_query_order(data: &mut Value, doc: &ExecutableDocument, operation: Option<&str>) {
    if let Some(op) = selected_operation(doc, operation) {
        Plan::new(doc, &[&op.selection_set.node]).apply(doc, data);
    }
}

/// The response keys of one merged selection, in query order, each with the
/// selection sets that make up its own sub-selection. Child plans are made when the
/// data first needs them, once for all the items of a list.
struct Plan<'a> {
    keys: Vec<(&'a Name, Vec<&'a SelectionSet>)>,
    children: Vec<Option<Plan<'a>>>,
}

impl<'a> Plan<'a> {
    fn new(doc: &'a ExecutableDocument, sets: &[&'a SelectionSet]) -> Self {
        let mut keys: Vec<(&'a Name, Vec<&'a SelectionSet>)> = Vec::new();
        let mut spread: Vec<&'a Name> = Vec::new();
        for set in sets {
            collect(doc, set, &mut keys, &mut spread);
        }
        let children = keys.iter().map(|_| None).collect();
        Plan { keys, children }
    }

    /// Where `key` goes; `hint` is where it usually is (its index in the object), so
    /// that an object already in order costs one comparison a key.
    fn position(&self, key: &str, hint: usize) -> usize {
        match self.keys.get(hint) {
            Some((k, _)) if k.as_str() == key => hint,
            _ => self
                .keys
                .iter()
                .position(|(k, _)| k.as_str() == key)
                .unwrap_or(usize::MAX),
        }
    }

    fn apply(&mut self, doc: &'a ExecutableDocument, value: &mut Value) {
        match value {
            Value::List(items) => {
                for item in items {
                    self.apply(doc, item);
                }
            }
            Value::Object(map) => {
                let in_order = map
                    .keys()
                    .enumerate()
                    .map(|(j, k)| self.position(k, j))
                    .is_sorted();
                if !in_order {
                    map.sort_by_cached_key(|k, _| self.position(k, 0));
                }
                for (j, (key, child)) in map.iter_mut().enumerate() {
                    let i = self.position(key, j);
                    let Some((_, sets)) = self.keys.get(i) else {
                        continue;
                    };
                    if sets.is_empty() || !matches!(child, Value::List(_) | Value::Object(_)) {
                        continue;
                    }
                    let sets = sets.clone();
                    self.children[i]
                        .get_or_insert_with(|| Plan::new(doc, &sets))
                        .apply(doc, child);
                }
            }
            _ => {}
        }
    }
}

/// CollectFields without types: fragments are expanded in place whatever their type
/// condition, since a field of a fragment that did not apply is simply absent from
/// the data. `spread` guards against fragment cycles (validation refuses them, but
/// this must not loop whatever it is given).
fn collect<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    keys: &mut Vec<(&'a Name, Vec<&'a SelectionSet>)>,
    spread: &mut Vec<&'a Name>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let key = &field.node.response_key().node;
                let sub = &field.node.selection_set.node;
                match keys.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, sets)) => {
                        if !sub.items.is_empty() {
                            sets.push(sub);
                        }
                    }
                    None => {
                        let sets = if sub.items.is_empty() {
                            Vec::new()
                        } else {
                            vec![sub]
                        };
                        keys.push((key, sets));
                    }
                }
            }
            Selection::InlineFragment(fragment) => {
                collect(doc, &fragment.node.selection_set.node, keys, spread);
            }
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                if spread.contains(&name) {
                    continue;
                }
                if let Some(Positioned {
                    node: FragmentDefinition { selection_set, .. },
                    ..
                }) = doc.fragments.get(name)
                {
                    spread.push(name);
                    collect(doc, &selection_set.node, keys, spread);
                    spread.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn object(keys: &[(&str, Value)]) -> Value {
        Value::Object(
            keys.iter()
                .map(|(k, v)| (Name::new(k), v.clone()))
                .collect(),
        )
    }

    fn keys(v: &Value) -> Vec<String> {
        match v {
            Value::Object(m) => m.keys().map(|k| k.to_string()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn orders_fields_aliases_fragments_and_lists() {
        let doc = parse_query(
            "query { b: builders { name id } ...F buildsets { nodes { bsid reason } } }
             fragment F on Query { a: builders { id } buildset(bsid: 1) { ... on Buildset { reason bsid } } }",
        )
        .unwrap();
        let item = object(&[("id", Value::from(1)), ("name", Value::from("n"))]);
        let mut data = object(&[
            (
                "buildsets",
                object(&[(
                    "nodes",
                    Value::List(vec![object(&[
                        ("reason", Value::from("r")),
                        ("bsid", Value::from(1)),
                    ])]),
                )]),
            ),
            (
                "buildset",
                object(&[("bsid", Value::from(1)), ("reason", Value::from("r"))]),
            ),
            ("a", Value::List(vec![object(&[("id", Value::from(2))])])),
            ("b", Value::List(vec![item.clone(), item])),
        ]);
        in_query_order(&mut data, &doc, None);
        assert_eq!(keys(&data), ["b", "a", "buildset", "buildsets"]);
        let Value::Object(m) = &data else { panic!() };
        let Value::List(b) = &m["b"] else { panic!() };
        assert!(b.iter().all(|x| keys(x) == ["name", "id"]));
        assert_eq!(keys(&m["buildset"]), ["reason", "bsid"]);
        let Value::Object(conn) = &m["buildsets"] else {
            panic!()
        };
        let Value::List(nodes) = &conn["nodes"] else {
            panic!()
        };
        assert_eq!(keys(&nodes[0]), ["bsid", "reason"]);
    }

    #[test]
    fn picks_the_named_operation() {
        let doc = parse_query("query A { x y } query B { y x }").unwrap();
        let mut data = object(&[("x", Value::Null), ("y", Value::Null)]);
        in_query_order(&mut data, &doc, Some("B"));
        assert_eq!(keys(&data), ["y", "x"]);
        assert!(selected_operation(&doc, None).is_none());
    }
}
