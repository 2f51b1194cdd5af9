//! What expanding every fragment of a whole document costs, computed without
//! expanding it: async-graphql's validation inlines the spreads of every operation
//! and fragment, selected or used or not, without memo and without a guard against
//! cycles, so the document is sized (and its cycles found) before it gets there.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::Name;

/// What expanding every fragment of a whole document would cost.
#[derive(Debug, PartialEq, Eq)]
pub enum Expansion {
    /// Selections of every operation and every fragment definition, spreads
    /// expanded (saturating past `stop`).
    Size(usize),
    /// A fragment spreads itself, directly or through others: expanded, it never ends.
    Cycle(String),
}

use std::collections::HashMap;

/// A fragment's own items (nested fields included) and the spreads in it.
fn local(set: &SelectionSet) -> (usize, Vec<Name>) {
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
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Open,
    Done(usize),
}

/// Each fragment's expanded size (saturating at `cap`), or the first cycle found.
type Sizes<'a> = HashMap<&'a Name, State>;

/// The selections of the whole document once its fragments are expanded: every
/// operation, selected or not, and every fragment definition, used or not, as
/// async-graphql's validation visits them (it inlines spreads, without memo and
/// without a guard against cycles). Each fragment's size is computed once, so this
/// costs the document's length whatever its spreads would multiply to.
pub fn document_expansion(doc: &ExecutableDocument, stop: usize) -> Expansion {
    let cap = stop.saturating_add(1);
    let parts: HashMap<&Name, (usize, Vec<Name>)> = doc
        .fragments
        .iter()
        .map(|(name, f)| (name, local(&f.node.selection_set.node)))
        .collect();
    let state = match fragment_sizes(&parts, cap) {
        Ok(state) => state,
        Err(cycle) => return Expansion::Cycle(cycle),
    };
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

/// Post-order over the spread graph, without recursion (a chain of fragments can be
/// as long as the document allows); a fragment reached again while open is a cycle.
fn fragment_sizes<'a>(
    parts: &'a HashMap<&'a Name, (usize, Vec<Name>)>,
    cap: usize,
) -> Result<Sizes<'a>, String> {
    let mut state: Sizes<'a> = HashMap::with_capacity(parts.len());
    for root in parts.keys() {
        if state.contains_key(root) {
            continue;
        }
        let mut stack: Vec<(&Name, usize)> = vec![(root, 0)];
        state.insert(root, State::Open);
        while let Some(&(name, next)) = stack.last() {
            let (own, spreads) = &parts[name];
            if let Some(child) = spreads.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                // An unknown fragment: validation names it; it adds nothing.
                if let Some((child, _)) = parts.get_key_value(child) {
                    match state.get(child) {
                        Some(State::Open) => return Err(child.to_string()),
                        Some(State::Done(_)) => {}
                        None => {
                            state.insert(child, State::Open);
                            stack.push((child, 0));
                        }
                    }
                }
                continue;
            }
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
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

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
