//! The one mapping from failures to what a client sees: a GraphQL error with
//! `extensions.code`. Internal details are logged with a request id, never sent.

use async_graphql::{Error, ErrorExtensions};

use crate::store::StoreError;

/// The `extensions.code` values of DESIGN §3: Apollo's names where Apollo has one
/// (Apollo Server's and Apollo Router's documented codes), ours otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The HTTP request is not a GraphQL request (method, media type, body shape),
    /// found before any document was read.
    BadRequest,
    /// The document is not GraphQL syntax.
    ParseFailed,
    /// The document does not fit the schema (unknown field, literal of the wrong type).
    ValidationFailed,
    /// `operationName` names no operation of the document, or is needed and missing.
    OperationResolutionFailure,
    /// An argument's or a variable's value is wrong: what a client fixes in its input.
    BadUserInput,
    /// A persisted query's hash, or a trusted document's id, that the server does not
    /// know (automatic persisted queries: send the text with the hash).
    PersistedQueryNotFound,
    /// A persisted query's hash sent to a server that keeps none (`--persisted-queries-bytes 0`).
    PersistedQueryNotSupported,
    /// `--trusted-documents` runs only listed operations; this one is not listed.
    PersistedQueryNotInList,
    NotFound,
    AlreadyComplete,
    /// Attached to a master: the buildset's build requests are the master's to finish.
    BuildRequestsUnfinished,
    Unauthenticated,
    Forbidden,
    QueryTooComplex,
    /// The server cannot take this now (shutting down, at its connection cap).
    Unavailable,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "BAD_REQUEST",
            Code::ParseFailed => "GRAPHQL_PARSE_FAILED",
            Code::ValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Code::OperationResolutionFailure => "OPERATION_RESOLUTION_FAILURE",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Code::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Code::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyComplete => "ALREADY_COMPLETE",
            Code::BuildRequestsUnfinished => "BUILD_REQUESTS_UNFINISHED",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Code::Unavailable => "UNAVAILABLE",
            Code::Internal => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// A request's id, carried in the log lines and in INTERNAL_SERVER_ERROR errors so that a user's
/// report can be matched with the server's log.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        RequestId(format!("{start:x}-{n:x}"))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

pub fn bad_input(field: &str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| {
        e.set("code", Code::BadUserInput.as_str());
        e.set("field", field);
    })
}

pub fn coded(code: Code, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code.as_str()))
}

/// The `retryAfter` (seconds) of an error for a write the storage could not take.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 5;

/// Maps a store error for the client; a database error is logged under the request
/// id and reported as INTERNAL_SERVER_ERROR without its text.
pub fn from_store(err: StoreError, request: Option<&RequestId>) -> Error {
    match err {
        StoreError::InvalidInput { field, message } => {
            let name = input_name(&field);
            bad_input(&name, message.replace(&field, &name))
        }
        StoreError::NotFound(message) => coded(Code::NotFound, message),
        e @ StoreError::TooLarge { limit } => {
            coded(Code::QueryTooComplex, format!("{e} (--max-response-bytes)"))
                .extend_with(|_, x| x.set("limit", limit))
        }
        e @ (StoreError::AlreadyComplete(_) | StoreError::RequestComplete(_)) => {
            coded(Code::AlreadyComplete, e.to_string())
        }
        ref e @ StoreError::RequestsUnfinished { ref brids, .. } => {
            coded(Code::BuildRequestsUnfinished, e.to_string())
                .extend_with(|_, x| x.set("buildrequestIds", brids.clone()))
        }
        err if err.is_storage_fault() => {
            let id = id_of(request);
            tracing::warn!(request_id = %id, error = %err, "the database cannot write: out of storage or an I/O error");
            coded(
                Code::Unavailable,
                format!("the database cannot store this now (disk full or an I/O error); nothing was written: try again in a few seconds (request id {id})"),
            )
            .extend_with(|_, x| {
                x.set("retryAfter", STORAGE_RETRY_AFTER_SECS);
                x.set("requestId", id.as_str());
            })
        }
        err if err.is_unavailable() => {
            let id = id_of(request);
            tracing::warn!(request_id = %id, error = %err, "database unavailable");
            coded(
                Code::Unavailable,
                format!("the database is unavailable; try again later (request id {id})"),
            )
        }
        err @ (StoreError::Db(_) | StoreError::Conflict) => internal(&err.to_string(), request),
    }
}

/// The schema's name of a store input field: Buildbot's snake_case column names
/// are camelCase here (`external_idstring` is `externalIdstring`).
pub fn input_name(field: &str) -> String {
    field
        .split('.')
        .map(|part| {
            let mut out = String::with_capacity(part.len());
            let mut upper = false;
            for c in part.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The request id for a log line and a message, `-` where there is none.
fn id_of(request: Option<&RequestId>) -> String {
    request.map_or_else(|| "-".to_owned(), |r| r.0.clone())
}

/// An INTERNAL_SERVER_ERROR: `detail` goes to the log under the request id, never to the
/// client, who gets the id to quote.
pub fn internal(detail: &str, request: Option<&RequestId>) -> Error {
    let id = id_of(request);
    tracing::error!(request_id = %id, error = %detail, "internal error");
    Error::new(format!("internal error (request id {id})")).extend_with(|_, e| {
        e.set("code", Code::Internal.as_str());
        e.set("requestId", id.as_str());
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_fields_are_named_as_the_schema_names_them() {
        for (store, schema) in [
            ("external_idstring", "externalIdstring"),
            ("parent_buildid", "parentBuildid"),
            ("properties.name", "properties.name"),
            ("reason", "reason"),
        ] {
            assert_eq!(super::input_name(store), schema);
        }
    }
}
