//! Bounds on how deeply a client's input nests. Parsing a document and coercing its
//! values are recursive, so input nested deeply enough overflows a thread's stack and
//! kills the whole process. Both checks run before anything recursive looks at
//! the input: the text before the parser, the values before coercion.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Pos, Value, Variables};

use super::text::{position, skip_graphql_ignored};

/// Where the document `query` first nests its brackets beyond `max`, skipping
/// strings, block strings and comments.
pub fn text_too_deep(query: &str, max: usize) -> Option<Pos> {
    let b = query.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        if let Some(next) = skip_graphql_ignored(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max {
                    return Some(position(query, i));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// How many lexical tokens `query` holds (names, numbers, strings, punctuators; not
/// commas, whitespace or comments), counting stops past `stop`. Parsing allocates per
/// token (a list of 500,000 numbers in 1 MB of text took 150 MB while parsed), so the
/// count is bounded before the parser runs, as Apollo Router's token limit does.
pub fn token_count(query: &str, stop: usize) -> usize {
    let b = query.as_bytes();
    let (mut i, mut tokens) = (0, 0usize);
    while i < b.len() && tokens <= stop {
        if let Some(next) = skip_graphql_ignored(b, i) {
            if b[i] == b'"' {
                tokens += 1;
            }
            i = next;
            continue;
        }
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' || c >= 0x80 {
            // A name, a number, `...`, or something the parser will refuse: one token.
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || matches!(b[i], b'_' | b'-' | b'.' | b'+')
                    || b[i] >= 0x80)
            {
                i += 1;
            }
            tokens += 1;
            continue;
        }
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b',') {
            tokens += 1;
        }
        i += 1;
    }
    tokens
}

/// How deeply `v` nests (a scalar is 0). Bounded by what parsed it: the document
/// parser's own limit, or serde_json's (128).
fn depth(v: &Value) -> usize {
    match v {
        Value::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The same for a literal, which may hold variables (they count as scalars here;
/// their values are checked as variables).
fn literal(v: &async_graphql_value::Value) -> usize {
    use async_graphql_value::Value as V;
    match v {
        V::List(items) => 1 + items.iter().map(literal).max().unwrap_or(0),
        V::Object(map) => 1 + map.values().map(literal).max().unwrap_or(0),
        _ => 0,
    }
}

fn literal_depth(v: &async_graphql::parser::types::Field, max: usize) -> Option<Name> {
    v.arguments
        .iter()
        .find(|(_, value)| literal(&value.node) > max)
        .map(|(name, _)| name.node.clone())
}

fn in_selection(set: &SelectionSet, max: usize) -> Option<Name> {
    set.items.iter().find_map(|item| match &item.node {
        Selection::Field(f) => {
            literal_depth(&f.node, max).or_else(|| in_selection(&f.node.selection_set.node, max))
        }
        Selection::InlineFragment(f) => in_selection(&f.node.selection_set.node, max),
        Selection::FragmentSpread(_) => None,
    })
}

/// The longest list of objects and the longest list of scalars in a value, each
/// with the name of the field that holds it (`at` for the value itself).
#[derive(Default)]
struct Longest {
    objects: (usize, String),
    scalars: (usize, String),
}

impl Longest {
    fn merge(mut self, other: Longest) -> Longest {
        if other.objects.0 > self.objects.0 {
            self.objects = other.objects;
        }
        if other.scalars.0 > self.scalars.0 {
            self.scalars = other.scalars;
        }
        self
    }

    fn list(len: usize, composite: bool, at: &str) -> Longest {
        let mut l = Longest::default();
        if composite {
            l.objects = (len, at.to_owned());
        } else {
            l.scalars = (len, at.to_owned());
        }
        l
    }
}

fn lists(v: &Value, at: &str) -> Longest {
    match v {
        Value::List(items) => {
            let composite = items
                .iter()
                .any(|i| matches!(i, Value::Object(_) | Value::List(_)));
            items
                .iter()
                .map(|i| lists(i, at))
                .fold(Longest::list(items.len(), composite, at), Longest::merge)
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| lists(v, k))
            .fold(Longest::default(), Longest::merge),
        _ => Longest::default(),
    }
}

fn literal_lists(v: &async_graphql_value::Value, at: &str) -> Longest {
    use async_graphql_value::Value as V;
    match v {
        V::List(items) => {
            let composite = items.iter().any(|i| matches!(i, V::Object(_) | V::List(_)));
            items
                .iter()
                .map(|i| literal_lists(i, at))
                .fold(Longest::list(items.len(), composite, at), Longest::merge)
        }
        V::Object(map) => map
            .iter()
            .map(|(k, v)| literal_lists(v, k))
            .fold(Longest::default(), Longest::merge),
        _ => Longest::default(),
    }
}

/// The first argument or variable holding a list longer than its bound: lists of
/// objects (filters, stamps, properties) `max_objects`, lists of scalars
/// `max_scalars`; (name, length, bound). Checked before coercion, which builds a
/// typed value for every item (60,000 `or` branches cost half a gigabyte before
/// the `where` bound could refuse them). Run after [`value_too_deep`]: the walk
/// recurses.
pub fn list_too_long(
    doc: &ExecutableDocument,
    variables: &Variables,
    max_objects: usize,
    max_scalars: usize,
) -> Option<(String, usize, usize)> {
    let over = |l: Longest| {
        if l.objects.0 > max_objects {
            Some((l.objects.1, l.objects.0, max_objects))
        } else if l.scalars.0 > max_scalars {
            Some((l.scalars.1, l.scalars.0, max_scalars))
        } else {
            None
        }
    };
    for (name, v) in variables.iter() {
        if let Some(found) = over(lists(v, name)) {
            return Some(found);
        }
    }
    let mut stack: Vec<&SelectionSet> = doc
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(doc.fragments.values().map(|f| &f.node.selection_set.node))
        .collect();
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    for (name, value) in &f.node.arguments {
                        if let Some(found) = over(literal_lists(&value.node, &name.node)) {
                            return Some(found);
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

/// The first argument or variable whose value nests deeper than `max`.
pub fn value_too_deep(
    doc: &ExecutableDocument,
    variables: &Variables,
    max: usize,
) -> Option<String> {
    if let Some((name, _)) = variables.iter().find(|(_, v)| depth(v) > max) {
        return Some(name.to_string());
    }
    doc.operations
        .iter()
        .find_map(|(_, op)| in_selection(&op.node.selection_set.node, max))
        .or_else(|| {
            doc.fragments
                .values()
                .find_map(|f| in_selection(&f.node.selection_set.node, max))
        })
        .map(|n| n.to_string())
}

/// Which bound the selected operation of `doc` breaks, if any: (limit name, limit,
/// count). Fragments are expanded as execution would, with an explicit stack and
/// a stop at the bound, so a fragment bomb (each fragment spreading the next
/// twice) or a fragment cycle costs no more than the bound to look at.
pub fn too_many_selections(
    doc: &ExecutableDocument,
    op: &SelectionSet,
    max_root_fields: usize,
    max_selections: usize,
) -> Option<(&'static str, usize, usize)> {
    let root_fields = walk(doc, op, false, max_selections).0;
    if root_fields > max_root_fields {
        return Some(("root fields", max_root_fields, root_fields));
    }
    let (_, seen) = walk(doc, op, true, max_selections);
    (seen > max_selections).then_some(("selections", max_selections, seen))
}

/// The root fields of an operation, aliases included and fragments expanded
/// (counting stops past `max_selections`).
pub fn root_fields(doc: &ExecutableDocument, op: &SelectionSet, max_selections: usize) -> usize {
    walk(doc, op, false, max_selections).0
}

/// Walks `op` with its fragments expanded, into fields' own selections only when
/// `into_fields`; stops once it has seen more than `stop` selections. Returns
/// (fields met, selections seen).
fn walk(
    doc: &ExecutableDocument,
    op: &SelectionSet,
    into_fields: bool,
    stop: usize,
) -> (usize, usize) {
    let (mut fields, mut seen) = (0, 0);
    let mut stack: Vec<&SelectionSet> = vec![op];
    while let Some(set) = stack.pop() {
        for item in &set.items {
            seen += 1;
            if seen > stop {
                return (fields, seen);
            }
            match &item.node {
                Selection::Field(f) => {
                    fields += 1;
                    if into_fields {
                        stack.push(&f.node.selection_set.node);
                    }
                }
                Selection::InlineFragment(f) => stack.push(&f.node.selection_set.node),
                Selection::FragmentSpread(s) => {
                    if let Some(f) = doc.fragments.get(&s.node.fragment_name.node) {
                        stack.push(&f.node.selection_set.node);
                    }
                }
            }
        }
    }
    (fields, seen)
}

/// The argument an input error at `pos` is about: async-graphql points a scalar's
/// coercion error (an Int out of range) at the argument's value, and an input
/// object's at the field. The first is matched exactly; for the second, the field's
/// one argument or its one object/list argument. Every selection set of the
/// document is looked at once, without recursion.
pub fn argument_at(doc: &ExecutableDocument, pos: Pos) -> Option<String> {
    use async_graphql_value::Value as V;
    let mut stack: Vec<&SelectionSet> = doc
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(doc.fragments.values().map(|f| &f.node.selection_set.node))
        .collect();
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let args = &f.node.arguments;
                    if let Some((name, _)) = args.iter().find(|(_, v)| v.pos == pos) {
                        return Some(name.node.to_string());
                    }
                    if f.pos == pos {
                        let mut composite = args
                            .iter()
                            .filter(|(_, v)| matches!(v.node, V::Object(_) | V::List(_)));
                        return match (args.len(), composite.next(), composite.next()) {
                            (1, _, _) => Some(args[0].0.node.to_string()),
                            (_, Some((name, _)), None) => Some(name.node.to_string()),
                            _ => None,
                        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_nesting_is_counted_outside_strings_and_comments() {
        let deep = format!("{{ x(v: {}1{}) }}", "[".repeat(200), "]".repeat(200));
        assert!(text_too_deep(&deep, 128).is_some());
        let quoted = format!("{{ x(v: \"{}\") }} # {}", "[".repeat(200), "{".repeat(200));
        assert_eq!(text_too_deep(&quoted, 128), None);
        assert_eq!(text_too_deep("{ a { b { c } } }", 3), None);
        assert_eq!(
            text_too_deep("{ a { b { c { d } } } }", 3),
            Some(Pos {
                line: 1,
                column: 13
            })
        );
    }

    fn bounds_of(query: &str) -> Option<(&'static str, usize, usize)> {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let (_, op) = doc.operations.iter().next().unwrap();
        too_many_selections(&doc, &op.node.selection_set.node, 50, 10_000)
    }

    #[test]
    fn fragment_bombs_and_cycles_stop_at_the_bound() {
        let mut q = String::from("query { ...F0 }");
        for i in 0..40 {
            q.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i + 1,
                i + 1
            ));
        }
        q.push_str(" fragment F40 on Query { __typename }");
        let found = bounds_of(&q);
        // Its expansion is 2^40 fields at the root: whichever bound it meets first.
        assert!(found.is_some());
        let mut deep = String::from("query { builders { ...G0 } }");
        for i in 0..20 {
            deep.push_str(&format!(
                " fragment G{i} on Builder {{ ...G{} ...G{} }}",
                i + 1,
                i + 1
            ));
        }
        deep.push_str(" fragment G20 on Builder { name }");
        let found = bounds_of(&deep);
        assert_eq!(found.map(|b| b.0), Some("selections"));
        let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        let found = bounds_of(cycle);
        assert!(found.is_some());
        let aliases: String = (0..60)
            .map(|i| format!("a{i}: builders {{ name }} "))
            .collect();
        let found = bounds_of(&format!("{{ {aliases} }}"));
        assert_eq!(found, Some(("root fields", 50, 60)));
        let page = "{ buildsets { nodes { bsid sourcestamps { ssid patch { body } } } } }";
        let found = bounds_of(page);
        assert_eq!(found, None);
    }

    #[test]
    fn input_errors_are_traced_to_their_argument() {
        let doc = async_graphql::parser::parse_query(
            "query($b: Int!) { x: buildset(bsid: $b) { bsid } ...F }\n\
             fragment F on Query { buildsets(first: 1, where: {bsid: {in: [1]}}) { nodes { bsid } } }",
        )
        .unwrap();
        let at = |line, column| argument_at(&doc, Pos { line, column });
        assert_eq!(at(1, 37).as_deref(), Some("bsid"));
        assert_eq!(at(2, 23).as_deref(), Some("where"));
        assert_eq!(at(2, 40).as_deref(), Some("first"));
        assert_eq!(at(1, 1), None);
    }

    #[test]
    fn value_nesting_is_found_in_literals_and_variables() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let doc = async_graphql::parser::parse_query(format!("{{ a {{ b(v: {}) }} }}", nested(10)))
            .unwrap();
        assert_eq!(
            value_too_deep(&doc, &Variables::default(), 9).as_deref(),
            Some("v")
        );
        assert_eq!(value_too_deep(&doc, &Variables::default(), 10), None);
        let vars = Variables::from_json(serde_json::json!({"w": [[[1]]]}));
        let doc = async_graphql::parser::parse_query("query($w: JSON) { a }").unwrap();
        assert_eq!(value_too_deep(&doc, &vars, 2).as_deref(), Some("w"));
    }
}

/// What expanding every fragment of a whole document would cost.
#[derive(Debug, PartialEq, Eq)]
pub enum Expansion {
    /// Selections of every operation and every fragment definition, spreads
    /// expanded (saturating past `stop`).
    Size(usize),
    /// A fragment spreads itself, directly or through others: expanded, it never ends.
    Cycle(String),
}

/// The selections of the whole document once its fragments are expanded: every
/// operation, selected or not, and every fragment definition, used or not, as
/// async-graphql's validation visits them (it inlines spreads, without memo and
/// without a guard against cycles). Each fragment's size is computed once, so this
/// costs the document's length whatever its spreads would multiply to.
pub fn document_expansion(doc: &ExecutableDocument, stop: usize) -> Expansion {
    use std::collections::HashMap;
    let cap = stop.saturating_add(1);
    // A fragment's own items (nested fields included) and the spreads in it.
    let local = |set: &SelectionSet| -> (usize, Vec<Name>) {
        let (mut own, mut spreads) = (0usize, Vec::new());
        let mut stack = vec![set];
        while let Some(set) = stack.pop() {
            for item in &set.items {
                own = own.saturating_add(1);
                match &item.node {
                    Selection::Field(f) => stack.push(&f.node.selection_set.node),
                    Selection::InlineFragment(f) => stack.push(&f.node.selection_set.node),
                    Selection::FragmentSpread(s) => spreads.push(s.node.fragment_name.node.clone()),
                }
            }
        }
        (own, spreads)
    };
    let parts: HashMap<&Name, (usize, Vec<Name>)> = doc
        .fragments
        .iter()
        .map(|(name, f)| (name, local(&f.node.selection_set.node)))
        .collect();
    // Post-order over the spread graph, without recursion (a chain of fragments can
    // be as long as the document allows).
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Open,
        Done(usize),
    }
    let mut state: HashMap<&Name, State> = HashMap::with_capacity(parts.len());
    for root in parts.keys() {
        if state.contains_key(root) {
            continue;
        }
        let mut stack: Vec<(&Name, usize)> = vec![(root, 0)];
        state.insert(root, State::Open);
        while let Some(&(name, next)) = stack.last() {
            let (_, spreads) = &parts[name];
            if let Some(child) = spreads.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                match parts.get_key_value(child) {
                    // An unknown fragment: validation names it; it adds nothing.
                    None => {}
                    Some((child, _)) => match state.get(child) {
                        Some(State::Open) => return Expansion::Cycle(child.to_string()),
                        Some(State::Done(_)) => {}
                        None => {
                            state.insert(child, State::Open);
                            stack.push((child, 0));
                        }
                    },
                }
                continue;
            }
            let (own, spreads) = &parts[name];
            let size = spreads.iter().fold(*own, |sum, child| {
                match parts.get_key_value(child).and_then(|(k, _)| state.get(k)) {
                    Some(State::Done(n)) => sum.saturating_add(*n).min(cap),
                    _ => sum,
                }
            });
            state.insert(name, State::Done(size.min(cap)));
            stack.pop();
        }
    }
    let size_of = |set: &SelectionSet| {
        let (own, spreads) = local(set);
        spreads
            .iter()
            .fold(own, |sum, child| match state.get(child) {
                Some(State::Done(n)) => sum.saturating_add(*n).min(cap),
                _ => sum,
            })
    };
    let mut total = 0usize;
    for (_, op) in doc.operations.iter() {
        total = total
            .saturating_add(size_of(&op.node.selection_set.node))
            .min(cap);
    }
    for (name, _) in doc.fragments.iter() {
        if let Some(State::Done(n)) = state.get(name) {
            total = total.saturating_add(*n).min(cap);
        }
    }
    Expansion::Size(total)
}

#[cfg(test)]
mod expansion_tests {
    use super::*;

    #[test]
    fn tokens_are_counted_as_the_lexer_sees_them() {
        assert_eq!(token_count("{ a b(x: [1, 2.5e3, -3]) }", 100), 13);
        assert_eq!(
            token_count("query Q { ...F } # a comment, not tokens", 100),
            5
        );
        assert_eq!(
            token_count(r#"{ a(s: "a, b { c }", t: """x""") }"#, 100),
            11
        );
        assert_eq!(
            token_count(&"a ".repeat(1000), 10),
            11,
            "stops past the bound"
        );
    }

    fn expand(q: &str) -> Expansion {
        document_expansion(&async_graphql::parser::parse_query(q).unwrap(), 1_000_000)
    }

    #[test]
    fn every_operation_and_fragment_counts_once_per_expansion() {
        assert_eq!(expand("{ a b { c } }"), Expansion::Size(3));
        // F: 2; the operation: 1 spread + 2; the definition of F: 2.
        assert_eq!(
            expand("{ ...F } fragment F on Query { a b }"),
            Expansion::Size(5)
        );
        // An unselected operation counts like a selected one.
        assert_eq!(expand("query A { a } query B { b c }"), Expansion::Size(3));
    }

    #[test]
    fn a_bomb_is_sized_without_expanding_it() {
        let mut q = String::from(
            "query Q { ...F11 } query R { __typename }\nfragment F0 on Query { __typename }\n",
        );
        for i in 1..=11 {
            let p = i - 1;
            q.push_str(&format!(
                "fragment F{i} on Query {{ ...F{p} ...F{p} ...F{p} ...F{p} }}\n"
            ));
        }
        let Expansion::Size(n) =
            document_expansion(&async_graphql::parser::parse_query(&q).unwrap(), 10_000)
        else {
            panic!("not a cycle");
        };
        assert_eq!(n, 10_001, "saturates at the bound");
    }

    #[test]
    fn cycles_are_found_however_far_apart() {
        assert_eq!(
            expand("{ ...A } fragment A on Query { ...A }"),
            Expansion::Cycle("A".into())
        );
        assert!(matches!(
            expand("query R { a } fragment A on Query { ...B } fragment B on Query { x { ...C } } fragment C on Q { ...A }"),
            Expansion::Cycle(_)
        ));
        // A diamond is not a cycle.
        assert_eq!(
            expand("{ ...A } fragment A on Query { ...B ...C } fragment B on Query { ...D } fragment C on Query { ...D } fragment D on Query { d }"),
            Expansion::Size(7 + 6 + 2 + 2 + 1)
        );
    }
}
