//! The lexing that the raw-text checks (`wide`, `nesting`) share: GraphQL's
//! ignored tokens and strings, number tokens, and positions.

use async_graphql::Pos;

/// If a GraphQL comment, block string or string starts at `i`, the index just past
/// it (unterminated ones run to the end).
pub fn skip_graphql_ignored(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    match b.get(i)? {
        b'#' => {
            while j < b.len() && b[j] != b'\n' && b[j] != b'\r' {
                j += 1;
            }
        }
        b'"' if b[i..].starts_with(b"\"\"\"") => {
            j += 3;
            while j < b.len() && !b[j..].starts_with(b"\"\"\"") {
                j += if b[j..].starts_with(b"\\\"\"\"") {
                    4
                } else {
                    1
                };
            }
            j += 3;
        }
        b'"' => {
            j += 1;
            while j < b.len() && b[j] != b'"' && b[j] != b'\n' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j += 1;
        }
        _ => return None,
    }
    Some(j.min(b.len()))
}

/// The number token starting at `i` (a `-` or a digit): its end, and whether it is
/// a float (has a fraction or an exponent) rather than an integer.
pub fn number_token(b: &[u8], i: usize) -> (usize, bool) {
    let mut j = i + 1;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    let float = j < b.len() && matches!(b[j], b'.' | b'e' | b'E');
    while j < b.len() && matches!(b[j], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
        j += 1;
    }
    (j, float)
}

/// The 1-based line and column of byte `at` of `text`.
pub fn position(text: &str, at: usize) -> Pos {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    Pos { line, column }
}
