//! Cursors of the `buildsets` connection: the store's sort-key values for a row,
//! with the ordering they belong to, as async-graphql's opaque (base64 JSON) cursor.

use async_graphql::connection::{CursorType, OpaqueCursor};
use async_graphql::Result;
use serde::{Deserialize, Serialize};

use crate::error::bad_input;
use crate::store::query::{keys_fit, KeyValues, OrderKey, Scalar};

#[derive(Serialize, Deserialize)]
struct CursorData {
    /// The ordering the cursor belongs to.
    o: String,
    /// The row's sort-key values.
    k: KeyValues,
}

fn signature(keys: &[OrderKey]) -> String {
    keys.iter()
        .map(|k| {
            format!(
                "{}:{}",
                k.field.name(),
                if k.descending { "D" } else { "A" }
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The cursor of a row whose sort keys `keys` have `values`.
pub fn encode(keys: &[OrderKey], values: KeyValues) -> String {
    OpaqueCursor(CursorData {
        o: signature(keys),
        k: values,
    })
    .encode_cursor()
}

/// The sort-key values of a cursor given as `arg`, checked against the ordering.
pub fn decode(keys: &[OrderKey], cursor: &str, arg: &str) -> Result<KeyValues> {
    let bad = |why: &str| bad_input(arg, format!("invalid cursor in `{arg}`: {why}"));
    let OpaqueCursor(data) = OpaqueCursor::<CursorData>::decode_cursor(cursor)
        .map_err(|_| bad("not a cursor of this API"))?;
    if data.o != signature(keys) || data.k.len() != keys.len() {
        return Err(bad("it was issued for a different orderBy"));
    }
    let nul = data
        .k
        .iter()
        .any(|v| matches!(v, Some(Scalar::Str(t)) if t.contains('\0')));
    if nul {
        return Err(bad("not a cursor of this API"));
    }
    if !keys_fit(keys, &data.k) {
        return Err(bad("it does not match the order's columns"));
    }
    Ok(data.k)
}
