//! Property values as Buildbot stores them: the JSON text of `[value, source]`,
//! written the way Python's `json.dumps` writes it.
//!
//! Python's JSON has values that JSON itself cannot carry exactly: `NaN`, `Infinity`,
//! `-Infinity` and integers of any size. Those are read as strings of Python's own
//! text (`"NaN"`, `"Infinity"`, `"-Infinity"`, `"123456789012345678901234"`), so that
//! a buildset that holds one still reads, and no digit is lost.

use std::borrow::Cow;
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

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
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

/// Python's `repr` of a finite float: the shortest digits that read back the same,
/// in fixed notation for decimal exponents -4..16 and scientific beyond
/// (`1e+16`, `1.5e-05`), as `json.dumps` writes it.
fn python_float_repr(value: f64) -> String {
    let sci = format!("{value:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return sci;
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    if (-4..16).contains(&exp) {
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let body = if exp >= 0 {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            let zeros = usize::try_from(-exp - 1).unwrap_or(0);
            format!("0.{}{digits}", "0".repeat(zeros))
        };
        format!("{sign}{body}")
    } else {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.unsigned_abs())
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

/// What decoding a stored JSON text holds in memory, as charged against an
/// operation's byte bound: its text, and 64 bytes for each value a container holds
/// (each `{`, `[` and `,` outside strings). The text alone misjudged it fiftyfold: a
/// 64 KB property of 16,000 empty objects decodes to about 3 MB, once as JSON and
/// again as the answer.
pub fn decoded_weight(text: &str) -> usize {
    const PER_VALUE: usize = 64;
    let (mut values, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' | b',' => values += 1,
                _ => {}
            }
        }
    }
    text.len().saturating_add(values.saturating_mul(PER_VALUE))
}

/// Reads a stored property; `None` when the text is not a `[value, source]` pair, which
/// the caller skips rather than failing (as Buildbot does).
pub fn decode_property(text: &str) -> Option<(Value, String)> {
    match serde_json::from_str::<Value>(&portable(text)).ok()? {
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

/// Whether an integer token overflows every integer type JSON numbers have here.
fn is_wide_integer(token: &str) -> bool {
    token.parse::<i64>().is_err() && token.parse::<u64>().is_err()
}

/// `text` with Python's non-JSON numbers (and integers too wide for 64 bits) turned
/// into strings of their text; borrowed when there is none, which is almost always.
fn portable(text: &str) -> Cow<'_, str> {
    let maybe = text.contains("NaN")
        || text.contains("Infinity")
        || text
            .as_bytes()
            .split(|b| !b.is_ascii_digit())
            .any(|run| run.len() >= 19);
    if !maybe {
        return Cow::Borrowed(text);
    }
    let mut out = Quoted {
        text,
        out: String::new(),
        copied: 0,
    };
    out.scan();
    if out.copied == 0 {
        return Cow::Borrowed(text);
    }
    let Quoted {
        mut out, copied, ..
    } = out;
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The tokens of a JSON text quoted as strings, and how far it was copied.
struct Quoted<'a> {
    text: &'a str,
    out: String,
    copied: usize,
}

impl Quoted<'_> {
    /// Copies the text up to `from`, then `from..to` as a JSON string.
    fn quote(&mut self, from: usize, to: usize) {
        let text = self.text;
        self.out.push_str(&text[self.copied..from]);
        self.out.push('"');
        self.out.push_str(&text[from..to]);
        self.out.push('"');
        self.copied = to;
    }

    fn scan(&mut self) {
        let text = self.text;
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            i = match b[i] {
                b'"' => skip_string(b, i),
                b'N' if text[i..].starts_with("NaN") => self.quoted(i, 3),
                b'I' if text[i..].starts_with("Infinity") => self.quoted(i, 8),
                b'-' if text[i..].starts_with("-Infinity") => self.quoted(i, 9),
                b'-' | b'0'..=b'9' => self.number(i),
                _ => i + 1,
            };
        }
    }

    fn quoted(&mut self, at: usize, len: usize) -> usize {
        self.quote(at, at + len);
        at + len
    }

    /// Past the number at `start`; an integer too wide for 64 bits is quoted.
    fn number(&mut self, start: usize) -> usize {
        let b = self.text.as_bytes();
        let mut i = start + 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i < b.len() && matches!(b[i], b'.' | b'e' | b'E') {
            while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                i += 1;
            }
        } else if is_wide_integer(&self.text[start..i]) {
            self.quote(start, i);
        }
        i
    }
}

/// Past the JSON string that starts at `i` (its opening quote).
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_weight_counts_values_not_only_bytes() {
        let plain = r#"["alice", "Force Build Form"]"#;
        assert_eq!(decoded_weight(plain), plain.len() + 2 * 64);
        // Brackets and commas inside strings are text.
        let quoted = r#"["a,[{\"b", "s\\"]"#;
        assert_eq!(decoded_weight(quoted), quoted.len() + 2 * 64);
        let dense = format!("[[{}], \"s\"]", vec!["{}"; 1000].join(","));
        assert!(decoded_weight(&dense) > 30 * dense.len());
    }
    use serde_json::json;

    #[test]
    fn writes_like_python_json_dumps() {
        assert_eq!(encode_property(&json!(1), "src"), r#"[1, "src"]"#);
        assert_eq!(encode_property(&json!(1.0), "s"), r#"[1.0, "s"]"#);
        for (value, python) in [
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123.25, "123.25"),
            (-0.0, "-0.0"),
            (1e15, "1000000000000000.0"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(
                encode_property(&json!(value), "s"),
                format!("[{python}, \"s\"]")
            );
        }
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
        assert_eq!(
            decode_property(r#"[[NaN, Infinity, -Infinity, "NaN"], "s"]"#),
            Some((json!(["NaN", "Infinity", "-Infinity", "NaN"]), "s".into()))
        );
        assert_eq!(
            decode_property(
                r#"[{"big": 123456789012345678901234, "n": -9223372036854775808, "u": 18446744073709551615, "f": 1e+300}, "s"]"#
            ),
            Some((
                json!({"big": "123456789012345678901234", "n": i64::MIN, "u": u64::MAX, "f": 1e300}),
                "s".into()
            ))
        );
        assert_eq!(
            decode_property(r#"["123456789012345678901234 NaN", "s"]"#),
            Some((json!("123456789012345678901234 NaN"), "s".into()))
        );
        assert_eq!(decode_property("[1]"), None);
        assert_eq!(decode_property("[1, 2]"), None);
    }
}
