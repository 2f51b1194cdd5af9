//! The parse cache: query texts already checked and parsed, weighed by what they
//! keep alive, so that the usual client (one text again and again with new
//! variables) is not parsed and scanned again.

use std::sync::Arc;

use super::check::{check_text, Checked};
use super::Answer;
use crate::config::Limits;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    query: String,
    operation: Option<String>,
}

/// [`Key`] borrowed from a request: a lookup allocates nothing. It hashes as `Key`
/// does (`&str` hashes as `String`).
#[derive(Hash)]
struct KeyRef<'a> {
    query: &'a str,
    operation: Option<&'a str>,
}

impl quick_cache::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.query == key.query && self.operation == key.operation.as_deref()
    }
}

/// An entry weighs the bytes it keeps alive: its key's texts and its parsed
/// document, estimated from the document's nodes (a dense document parses to tens
/// of bytes per byte of text).
#[derive(Clone)]
struct TextWeight;

impl quick_cache::Weighter<Key, Arc<Checked>> for TextWeight {
    fn weight(&self, _: &Key, checked: &Arc<Checked>) -> u64 {
        checked.weight
    }
}

/// 32 MiB of parsed documents and their keys, whatever the mix: a few hundred
/// distinct queries of a web UI fit many times over; a client sending a new text
/// every time only churns it.
const KNOWN_WEIGHT: u64 = 32 << 20;

/// A document heavier than this is parsed for its request but not kept: one would
/// push out hundreds of the usual ones.
const KNOWN_LARGEST: u64 = KNOWN_WEIGHT / 64;

/// The texts known, with their checks' outcome.
pub(super) struct Known(quick_cache::sync::Cache<Key, Arc<Checked>, TextWeight>);

impl Known {
    pub(super) fn new() -> Known {
        Known(quick_cache::sync::Cache::with_weighter(
            1024,
            KNOWN_WEIGHT,
            TextWeight,
        ))
    }

    /// `query` checked and parsed for `operation`, from the cache or now.
    // The refusal is the answer itself, built once and moved once; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    pub(super) fn checked(
        &self,
        bounds: &Limits,
        query: &str,
        operation: Option<&str>,
    ) -> Result<Arc<Checked>, Answer> {
        if let Some(checked) = self.0.get(&KeyRef { query, operation }) {
            return Ok(checked);
        }
        let checked = Arc::new(check_text(bounds, query, operation)?);
        if checked.weight <= KNOWN_LARGEST {
            let key = Key {
                query: query.to_owned(),
                operation: operation.map(str::to_owned),
            };
            self.0.insert(key, checked.clone());
        }
        Ok(checked)
    }
}
