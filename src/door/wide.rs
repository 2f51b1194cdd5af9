//! Integers too wide for 64 bits, found in the text a client sent. JSON and GraphQL
//! allow any number of digits, but a parsed number here is an i64, a u64 or an f64:
//! a wider integer would silently become a rounded float. So it is refused
//! (BAD_USER_INPUT) before anything parses it.

use async_graphql::Pos;

use super::text::{number_token, position, skip_graphql_ignored};

/// Whether an integer token fits no 64-bit integer type.
fn is_wide(token: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(token) else {
        return false;
    };
    text.parse::<i64>().is_err() && text.parse::<u64>().is_err()
}

/// A cheap first look: every wide integer has a run of at least 19 digits.
fn has_long_digit_run(text: &[u8]) -> bool {
    text.split(|b| !b.is_ascii_digit())
        .any(|run| run.len() >= 19)
}

enum Frame {
    Object { key: Option<String>, want_key: bool },
    Array { index: usize },
}

/// The path (`a.b.0.c`) of the first wide integer in the JSON text `json`, if any.
/// `json` is known to be valid JSON (it was parsed already).
pub fn in_json(json: &[u8]) -> Option<String> {
    if !has_long_digit_run(json) {
        return None;
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'{' => {
                stack.push(Frame::Object {
                    key: None,
                    want_key: true,
                });
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array { index: 0 });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Array { index }) => *index += 1,
                    Some(Frame::Object { want_key, .. }) => *want_key = true,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(json.len());
                i += 1;
                if let Some(Frame::Object { key, want_key }) = stack.last_mut() {
                    if *want_key {
                        let raw = String::from_utf8_lossy(&json[start..end]);
                        *key = Some(
                            serde_json::from_str(&format!("\"{raw}\""))
                                .unwrap_or_else(|_| raw.into_owned()),
                        );
                        *want_key = false;
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let (end, float) = number_token(json, i);
                i = end;
                if !float && is_wide(&json[start..i]) {
                    return Some(path(&stack));
                }
            }
            _ => i += 1,
        }
    }
    None
}

fn path(stack: &[Frame]) -> String {
    stack
        .iter()
        .map(|f| match f {
            Frame::Object { key, .. } => key.clone().unwrap_or_default(),
            Frame::Array { index } => index.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The position of the first wide integer literal in the GraphQL document `query`,
/// skipping strings, block strings and comments.
pub fn in_graphql(query: &str) -> Option<Pos> {
    let b = query.as_bytes();
    if !has_long_digit_run(b) {
        return None;
    }
    let mut i = 0;
    while i < b.len() {
        if let Some(next) = skip_graphql_ignored(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            c if c == b'_' || c.is_ascii_alphabetic() => {
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                let (end, float) = number_token(b, i);
                if !float && is_wide(&b[i..end]) {
                    return Some(position(query, i));
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    None
}

/// Marks a request whose raw JSON text holds an integer too wide for 64 bits (which
/// parsing would round): the door refuses it naming `path` within the variables
/// (`variables_at`: where the variables sit in that text).
pub fn mark(request: &mut async_graphql::Request, json: &[u8], variables_at: &str) {
    if let Some(path) = in_json(json) {
        let path = path
            .strip_prefix(variables_at)
            .map_or(path.as_str(), |p| p.trim_start_matches('.'))
            .to_owned();
        request
            .extensions
            .insert(super::WIDE_INTEGER.into(), async_graphql::Value::from(path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wide_integers_in_json_with_their_path() {
        let body = br#"{"query": "123456789012345678901234", "variables": {"in": {"properties": [{"name": "a", "value": 1}, {"name": "b", "value": {"x": [1, 123456789012345678901234]}}]}}}"#;
        assert_eq!(
            in_json(body).as_deref(),
            Some("variables.in.properties.1.value.x.1")
        );
        for fits in [
            &br#"{"a": 9223372036854775807, "b": -9223372036854775808}"#[..],
            br#"{"a": 18446744073709551615, "b": 1.5e300, "c": 12345678901234567890123.0}"#,
            br#"{"a": "123456789012345678901234"}"#,
        ] {
            assert_eq!(in_json(fits), None, "{}", String::from_utf8_lossy(fits));
        }
        assert_eq!(
            in_json(br#"{"v": -18446744073709551616}"#).as_deref(),
            Some("v")
        );
    }

    #[test]
    fn finds_wide_integer_literals_in_graphql() {
        let q = "mutation {\n  x(v: [1, 123456789012345678901234]) { y }\n}";
        assert_eq!(
            in_graphql(q),
            Some(Pos {
                line: 2,
                column: 12
            })
        );
        for fits in [
            "{ x(v: \"123456789012345678901234\") }",
            "{ x(v: 1.0e12345678901234567890) }",
            "# 123456789012345678901234\n{ x }",
            "{ x(v: \"\"\"123456789012345678901234\"\"\") }",
            "{ a123456789012345678901234 }",
            "{ x(v: 18446744073709551615) }",
        ] {
            assert_eq!(in_graphql(fits), None, "{fits}");
        }
    }
}
