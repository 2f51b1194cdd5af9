//! The connector: Buildbot's buildset operations over a SeaORM connection, with no
//! GraphQL in sight. Every function takes a connection (or transaction) and returns
//! typed errors.

pub mod db;
mod error;
pub mod hash;
pub mod json;
pub mod query;
pub mod read;
mod types;
pub mod write;

pub use db::{connect, connect_with, open, open_with, prepare_schema, SchemaMode};
pub use error::{StoreError, StoreResult};
pub use types::*;

/// Now, as Buildbot stores times: integer epoch seconds, UTC.
pub fn now() -> i32 {
    i32::try_from(chrono::Utc::now().timestamp()).unwrap_or(i32::MAX)
}
