//! What the door answers: how an operation arrived and who sent it, what became of
//! it (`Status`), the answer and the refusals, and its one log line.

use std::time::Instant;

use async_graphql::{Pos, Response, ServerError, Value};
use axum::http::StatusCode;

use crate::error::{Code, RequestId};
use crate::store::replica::{Lsn, ReadFrom};

/// How an operation arrived; GET never runs a mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Post,
    Get,
    WebSocket,
}

impl Transport {
    /// Its one spelling, in log lines and metric labels alike.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Post => "post",
            Transport::Get => "get",
            Transport::WebSocket => "websocket",
        }
    }
}

/// The bearer token an operation came with (the `Authorization` header, or the
/// WebSocket's `connection_init` payload), and where it asks to read from.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub token: Option<String>,
    /// `X-Read-From` / `X-Read-After` (with replicas): a replica (the default), the
    /// primary, or a replica that has replayed a given write.
    pub read_from: ReadFrom,
    /// What is wrong with those headers, if anything: the request is refused.
    pub bad_read_header: Option<String>,
}

/// The request header that asks for the primary (`primary`) or any replica (`replica`).
pub const READ_FROM: &str = "x-read-from";
/// The request header naming a write the read must see, as `X-Write-Position` gave it.
pub const READ_AFTER: &str = "x-read-after";
/// The response header of a mutation, with replicas: where the primary was after it.
pub const WRITE_POSITION: &str = "x-write-position";

impl Caller {
    /// Where the headers `X-Read-From` and `X-Read-After` ask to read from.
    pub fn read_from(from: Option<&str>, after: Option<&str>) -> Result<ReadFrom, String> {
        let mut read = match from.map(str::trim) {
            None => ReadFrom::Replica,
            Some(v) if v.eq_ignore_ascii_case("primary") => ReadFrom::Primary,
            Some(v) if v.eq_ignore_ascii_case("replica") => ReadFrom::Replica,
            Some(v) => {
                return Err(format!(
                    "X-Read-From is `primary` or `replica`, not `{}`",
                    v.chars().take(40).collect::<String>()
                ))
            }
        };
        if let Some(v) = after {
            let at = Lsn::parse(v).ok_or_else(|| {
                format!(
                    "X-Read-After is a write position as X-Write-Position gives it (such as 0/3000148), not `{}`",
                    v.chars().take(40).collect::<String>()
                )
            })?;
            if read == ReadFrom::Replica {
                read = ReadFrom::After(at);
            }
        }
        Ok(read)
    }

    /// The token of an `Authorization` value, `Bearer <token>` (any case of
    /// "Bearer"), as HTTP headers and `connection_init` payloads carry it.
    pub fn bearer(value: &str) -> Option<String> {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
            .filter(|t| !t.is_empty())
    }
}

/// What became of an operation, which each transport turns into its own status
/// (GraphQL over HTTP's for its media type, graphql-transport-ws's `next` or
/// `error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It ran: `data` is there, perhaps with field errors.
    Executed,
    /// A GraphQL request error: it did not run (parse, validation, variable
    /// coercion, a limit).
    RequestError,
    /// It could not finish now (the request timeout): no `data`, try again.
    Unavailable,
    /// Refused before GraphQL, with this HTTP status (tokens, methods).
    Http(StatusCode),
}

impl Status {
    /// For the log line.
    fn label(self) -> &'static str {
        match self {
            Status::Executed => "executed",
            Status::RequestError => "request error",
            Status::Unavailable => "unavailable",
            Status::Http(s) => s.canonical_reason().unwrap_or("refused"),
        }
    }

    /// A response's own: a response without data whose errors name no field
    /// did not run (async-graphql's parse and validation errors).
    pub(super) fn of(response: &Response) -> Status {
        let not_run = response.data == Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        if not_run {
            Status::RequestError
        } else {
            Status::Executed
        }
    }
}

/// What the door answers: a GraphQL response and what became of the operation.
pub struct Answer {
    pub status: Status,
    pub response: Response,
}

/// A refusal before any operation runs.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// As a GraphQL response (no data, one coded error without a location).
    pub fn answer(self) -> Answer {
        error_answer(
            Status::Http(self.status),
            self.code,
            self.message,
            None,
            &[],
        )
    }
}

/// One line per operation: failures at info (seen by default), successes at debug
/// (`RUST_LOG=debug`), so that a busy server does not spend its time writing access
/// logs.
pub(super) fn log_line(
    request_id: &RequestId,
    operation: Option<&str>,
    transport: Transport,
    answer: &Answer,
    started: Instant,
    statements: Option<u64>,
) {
    let took = started.elapsed();
    let code = answer
        .response
        .errors
        .first()
        .and_then(|e| e.extensions.as_ref())
        .and_then(|e| e.get("code"))
        .map_or_else(
            || "OK".to_owned(),
            |c| c.to_string().trim_matches('"').to_owned(),
        );
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                request_id = %request_id.0,
                operation = operation.unwrap_or("-"),
                transport = transport.label(),
                status = answer.status.label(),
                code = code.as_str(),
                // Microseconds, without the float's noise (0.004588999999999999).
                duration_ms = (took.as_secs_f64() * 1e6).round() / 1e3,
                statements,
                "request"
            )
        };
    }
    crate::metrics::record_request(operation, transport.label(), &code, took, statements);
    if code == "OK" {
        line!(debug);
    } else {
        line!(info);
    }
}

/// An answer of one error with `code` and any `extra` extensions.
pub(super) fn error_answer(
    status: Status,
    code: Code,
    message: impl Into<String>,
    pos: Option<Pos>,
    extra: &[(&str, Value)],
) -> Answer {
    let mut err = ServerError::new(message, pos);
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", Value::from(code.as_str()));
    for (key, value) in extra {
        ext.set(*key, value.clone());
    }
    Answer {
        status,
        response: Response::from_errors(vec![err]),
    }
}

/// A document the server cannot read (GRAPHQL_PARSE_FAILED).
pub(super) fn unparsable(message: impl Into<String>, pos: Option<Pos>) -> Answer {
    error_answer(Status::RequestError, Code::ParseFailed, message, pos, &[])
}

/// A document that breaks one of GraphQL's validation rules (GRAPHQL_VALIDATION_FAILED).
pub(super) fn invalid(message: impl Into<String>, pos: Option<Pos>) -> Answer {
    error_answer(
        Status::RequestError,
        Code::ValidationFailed,
        message,
        pos,
        &[],
    )
}

pub(super) fn bad_input(field: &str, message: impl Into<String>, pos: Option<Pos>) -> Answer {
    error_answer(
        Status::RequestError,
        Code::BadUserInput,
        message,
        pos,
        &[("field", Value::from(field))],
    )
}

#[cfg(test)]
mod read_header_tests {
    use super::*;

    #[test]
    fn read_headers_choose_a_replica_the_primary_or_a_position() {
        assert_eq!(Caller::read_from(None, None), Ok(ReadFrom::Replica));
        assert_eq!(
            Caller::read_from(Some(" Primary "), None),
            Ok(ReadFrom::Primary)
        );
        assert_eq!(
            Caller::read_from(Some("replica"), None),
            Ok(ReadFrom::Replica)
        );
        assert_eq!(
            Caller::read_from(None, Some("0/3000148")),
            Ok(ReadFrom::After(Lsn(0x300_0148)))
        );
        // The primary has every write: asking for it wins over a position.
        assert_eq!(
            Caller::read_from(Some("primary"), Some("0/3000148")),
            Ok(ReadFrom::Primary)
        );
        for (from, after) in [
            (Some("nearest"), None),
            (None, Some("yesterday")),
            (None, Some("")),
        ] {
            assert!(
                Caller::read_from(from, after).is_err(),
                "{from:?} {after:?}"
            );
        }
    }
}
