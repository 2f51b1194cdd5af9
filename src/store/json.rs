//! Property values as Buildbot stores them: the JSON text of `[value, source]`,
//! written the way Python's `json.dumps` writes it.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};
use serde_json::Value;

/// Python's default `json.dumps` layout: `", "` and `": "` separators, non-ASCII
/// escaped as `\uXXXX` (so the text is byte-identical to what Buildbot writes).
struct PythonFormatter;

/// Python's item separator, before every item but the first.
fn separator<W: ?Sized + io::Write>(w: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separator(w, first)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separator(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => return write!(w, "\\u{byte:04x}"),
        };
        w.write_all(s)
    }
}

/// The stored text of one property.
pub fn encode_property(value: &Value, source: &str) -> String {
    let pair = (value, source);
    let mut out = Vec::with_capacity(64);
    let mut ser = Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing a `Value` into memory cannot fail (its map keys are strings).
    if pair.serialize(&mut ser).is_err() {
        return serde_json::to_string(&pair).unwrap_or_default();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Reads a stored property; `None` when the text is not a `[value, source]` pair, which
/// the caller skips rather than failing (as Buildbot does).
pub fn decode_property(text: &str) -> Option<(Value, String)> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(mut pair) if pair.len() == 2 => {
            let source = match pair.pop()? {
                Value::String(s) => s,
                _ => return None,
            };
            Some((pair.pop()?, source))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_like_python_json_dumps() {
        assert_eq!(encode_property(&json!(1), "src"), r#"[1, "src"]"#);
        assert_eq!(encode_property(&json!(1.0), "s"), r#"[1.0, "s"]"#);
        assert_eq!(
            encode_property(&json!({"a": [1, null], "b": "é"}), "x"),
            r#"[{"a": [1, null], "b": "\u00e9"}, "x"]"#
        );
        assert_eq!(
            encode_property(&json!("😀\n"), "x"),
            r#"["\ud83d\ude00\n", "x"]"#
        );
    }

    #[test]
    fn reads_back_and_skips_garbage() {
        let text = encode_property(&json!({"k": [true, 2.5]}), "Scheduler");
        assert_eq!(
            decode_property(&text),
            Some((json!({"k": [true, 2.5]}), "Scheduler".into()))
        );
        assert_eq!(decode_property("not json"), None);
        assert_eq!(decode_property("[1]"), None);
        assert_eq!(decode_property("[1, 2]"), None);
    }
}
