//! What the door answers: how an operation arrived and who sent it, what became of
//! it (`Status`), the answer and the refusals, and its one log line.

use std::time::Instant;

use async_graphql::{Pos, Response, ServerError, Value};
use axum::http::StatusCode;

use crate::error::{Code, RequestId};

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
/// WebSocket's `connection_init` payload).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub token: Option<String>,
}

impl Caller {
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
