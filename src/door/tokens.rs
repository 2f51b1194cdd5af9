//! The token rules: the read token opens every operation, a write token mutations;
//! tokens are compared in constant time.

use axum::http::StatusCode;

use super::{Caller, Refusal};
use crate::error::Code;

/// Whether two tokens are equal, in time that depends only on their lengths.
fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The tokens a server accepts.
pub(super) struct Keys {
    read: Option<String>,
    write: Vec<String>,
}

impl Keys {
    pub(super) fn new(tokens: crate::config::Tokens) -> Keys {
        Keys {
            read: tokens.read,
            write: tokens.write,
        }
    }

    fn is_write_token(&self, token: &str) -> bool {
        // Every token is compared, each in constant time: the answer's timing tells
        // nothing of how much of a guess was right.
        self.write
            .iter()
            .fold(false, |found, w| found | same_token(w, token))
    }

    /// The read rule: with a read token configured, every operation needs it (or a
    /// write token).
    pub(super) fn admit(&self, caller: &Caller) -> Result<(), Refusal> {
        let Some(read) = &self.read else {
            return Ok(());
        };
        match caller.token.as_deref() {
            Some(t) if same_token(read, t) | self.is_write_token(t) => Ok(()),
            Some(_) => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                "the bearer token is not valid for this server",
            )),
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                "this server needs `Authorization: Bearer <token>` for every request",
            )),
        }
    }

    /// The write rule: with write tokens configured, a mutation needs one of them.
    pub(super) fn admit_write(&self, caller: &Caller) -> Result<(), Refusal> {
        if self.write.is_empty() {
            return Ok(());
        }
        match caller.token.as_deref() {
            Some(t) if self.is_write_token(t) => Ok(()),
            Some(_) => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                "the bearer token does not allow writes",
            )),
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                "writes need `Authorization: Bearer <token>`",
            )),
        }
    }
}
