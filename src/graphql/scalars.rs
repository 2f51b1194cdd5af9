//! The `DateTime` scalar: RFC 3339 text, UTC on output.

use async_graphql::{InputValueError, InputValueResult, Result, Scalar, ScalarType, Value};
use chrono::Utc;

use crate::error::bad_input;

/// A date-time. Input that is not RFC 3339 is kept, not rejected, so that the
/// resolver can reject it as BAD_USER_INPUT naming the argument (a scalar's own parse
/// error cannot say which field it came from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DateTime {
    Valid(chrono::DateTime<Utc>),
    Invalid(String),
}

impl DateTime {
    /// As Buildbot stores it, or BAD_USER_INPUT naming `field`.
    pub fn epoch(&self, field: &str) -> Result<i32> {
        match self {
            DateTime::Valid(t) => i32::try_from(t.timestamp()).map_err(|_| {
                bad_input(
                    field,
                    format!("`{field}` is outside the range Buildbot can store"),
                )
            }),
            DateTime::Invalid(s) => Err(bad_input(
                field,
                format!(
                    "`{field}` must be an RFC 3339 date-time, like 2024-01-02T03:04:05Z; got {s}"
                ),
            )),
        }
    }
}

/// A date-time in RFC 3339 format, e.g. `2024-01-02T03:04:05Z`; returned in UTC.
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) => Ok(match chrono::DateTime::parse_from_rfc3339(&s) {
                Ok(t) => DateTime::Valid(t.with_timezone(&Utc)),
                Err(_) => DateTime::Invalid(format!("{s:?}")),
            }),
            Value::Number(n) => Ok(DateTime::Invalid(n.to_string())),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            DateTime::Valid(t) => Value::String(t.to_rfc3339()),
            DateTime::Invalid(s) => Value::String(s.clone()),
        }
    }
}
