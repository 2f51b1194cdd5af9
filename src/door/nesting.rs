//! Bounds on how deeply a client's input nests. Parsing a document and coercing its
//! values are recursive, so input nested deeply enough overflows a thread's stack and
//! kills the whole process. Both checks run before anything recursive looks at
//! the input: the text before the parser, the values before coercion.

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
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

/// The top selection set of every operation and every fragment definition.
pub fn top_sets(doc: &ExecutableDocument) -> Vec<&SelectionSet> {
    doc.operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(doc.fragments.values().map(|f| &f.node.selection_set.node))
        .collect()
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
    let mut stack = top_sets(doc);
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

/// The selections of an operation, aliases included and fragments expanded
/// (counting stops past `stop`).
pub fn selections(doc: &ExecutableDocument, op: &SelectionSet, stop: usize) -> usize {
    walk(doc, op, true, stop).1
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
    let mut stack = top_sets(doc);
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

/// The fields of a selection set, through its inline fragments and fragment spreads
/// (each fragment once; a spread of an unknown fragment adds nothing, and
/// validation refuses it).
pub fn fields_of<'a>(doc: &'a ExecutableDocument, set: &'a SelectionSet) -> Vec<&'a Field> {
    let mut found = Vec::new();
    let mut stack = vec![set];
    let mut spread = std::collections::HashSet::new();
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => found.push(&f.node),
                Selection::InlineFragment(f) => stack.push(&f.node.selection_set.node),
                Selection::FragmentSpread(s) => {
                    let fragment = &s.node.fragment_name.node;
                    if spread.insert(fragment.clone()) {
                        if let Some(f) = doc.fragments.get(fragment) {
                            stack.push(&f.node.selection_set.node);
                        }
                    }
                }
            }
        }
    }
    found
}

/// Whether the argument named at `pos` takes any of its value from a variable: a
/// wrong value there is the client's input (BAD_USER_INPUT), a wrong literal is
/// the document's (GRAPHQL_VALIDATION_FAILED), as graphql-js and Apollo tell them.
pub fn argument_uses_variable(doc: &ExecutableDocument, pos: Pos) -> bool {
    fn has_variable(v: &async_graphql_value::Value) -> bool {
        use async_graphql_value::Value as V;
        match v {
            V::Variable(_) => true,
            V::List(items) => items.iter().any(has_variable),
            V::Object(fields) => fields.values().any(has_variable),
            _ => false,
        }
    }
    let mut stack = top_sets(doc);
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    if let Some((_, value)) =
                        f.node.arguments.iter().find(|(name, _)| name.pos == pos)
                    {
                        return has_variable(&value.node);
                    }
                    stack.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(f) => stack.push(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    false
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
        let set = &op.node.selection_set.node;
        let roots = root_fields(&doc, set, 10_000);
        if roots > 50 {
            return Some(("root fields", 50, roots));
        }
        let seen = selections(&doc, set, 10_000);
        (seen > 10_000).then_some(("selections", 10_000, seen))
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
}
