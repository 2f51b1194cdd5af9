//! The one mapping from failures to what a client sees: a GraphQL error with
//! `extensions.code`. Internal details are logged with a request id, never sent.

use async_graphql::{Error, ErrorExtensions};

use crate::store::StoreError;

/// A request's id, carried in the log lines and in INTERNAL errors so that a user's
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
        e.set("code", "BAD_USER_INPUT");
        e.set("field", field);
    })
}

pub fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// Maps a store error for the client; a database error is logged under the request
/// id and reported as INTERNAL without its text.
pub fn from_store(err: StoreError, request: Option<&RequestId>) -> Error {
    match err {
        StoreError::InvalidInput { field, message } => bad_input(&field, message),
        StoreError::NotFound(message) => coded("NOT_FOUND", message),
        e @ StoreError::AlreadyComplete(_) => coded("ALREADY_COMPLETE", e.to_string()),
        err @ (StoreError::Db(_) | StoreError::Conflict) => {
            let id = request.map_or_else(|| "-".to_owned(), |r| r.0.clone());
            tracing::error!(request_id = %id, error = %err, "database error");
            Error::new(format!("internal error (request id {id})")).extend_with(|_, e| {
                e.set("code", "INTERNAL");
                e.set("requestId", id.as_str());
            })
        }
    }
}
