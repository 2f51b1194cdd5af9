use sea_orm::DbErr;

/// What can go wrong in a store operation, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The input is invalid; `field` names the offending input field.
    #[error("{message}")]
    InvalidInput { field: String, message: String },
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation has read more text (property values, patches) than its bound.
    #[error("the answer would hold more than {limit} bytes (property values, patches, and 64 for each object of a nested list); ask for fewer buildsets or fewer fields")]
    TooLarge { limit: u64 },
    /// The buildset was already complete.
    #[error("buildset {0} is already complete")]
    AlreadyComplete(i32),
    /// The build request was already complete.
    #[error("build request {0} is already complete")]
    RequestComplete(i32),
    /// Attached to a master: the buildset has build requests the master has not
    /// finished, so it is the master's to complete.
    #[error("buildset {bsid} has unfinished build requests ({}): the Buildbot master completes it when they finish; cancel them (cancelBuildset) to stop them", brids.iter().map(i32::to_string).collect::<Vec<_>>().join(", "))]
    RequestsUnfinished { bsid: i32, brids: Vec<i32> },
    /// A concurrent writer got in the way (e.g. the row a unique key pointed at was
    /// rolled back between our insert and our read); running again resolves it.
    #[error("a concurrent write got in the way")]
    Conflict,
    /// The database failed; the detail is for the log, never for the client.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True when the database could not be reached or stopped answering (no free
    /// connection in time, a connection refused, reset or closed): the request may
    /// succeed later, and the client's input is not to blame.
    pub fn is_unavailable(&self) -> bool {
        use sea_orm::sqlx::Error as E;
        match self {
            StoreError::Db(DbErr::ConnectionAcquire(_)) => true,
            StoreError::Db(
                DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e))
                | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
                | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)),
            ) => {
                matches!(
                    **e,
                    E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Tls(_)
                ) || e.as_database_error().is_some_and(|db| {
                    // The database did not answer in time: PostgreSQL's statement
                    // timeout (57014) or lock timeout (55P03); MySQL's lock wait
                    // timeout (1205, SQLSTATE HY000) or statement time limit (3024).
                    let code = db.code().unwrap_or_default();
                    matches!(&*code, "57014" | "55P03")
                        || db
                            .try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
                            .is_some_and(|m| matches!(m.number(), 1205 | 3024))
                })
            }
            _ => false,
        }
    }

    /// True when the database could not write for want of storage: disk or table
    /// full, an I/O error. Not the client's fault, and it passes once space is freed.
    pub fn is_storage_fault(&self) -> bool {
        let StoreError::Db(
            DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
            | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))
            | DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)),
        ) = self
        else {
            return false;
        };
        let Some(db) = e.as_database_error() else {
            return false;
        };
        if let Some(m) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
            // ER_DISK_FULL, ER_RECORD_FILE_FULL, ER_ERROR_ON_WRITE, ER_OUTOFMEMORY.
            return matches!(m.number(), 1021 | 1114 | 1026 | 1037 | 1041);
        }
        let code = db.code().unwrap_or_default();
        if db
            .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
            .is_some()
        {
            // SQLite's primary codes (the low byte of an extended one): IOERR, FULL.
            return code
                .parse::<i32>()
                .is_ok_and(|c| matches!(c & 0xff, 10 | 13));
        }
        // PostgreSQL: class 53 (insufficient resources: disk full, out of memory),
        // 58030 io_error.
        code.starts_with("53") || code == "58030"
    }

    /// True when `e` is a unique key violation (PostgreSQL 23505, MySQL 1062).
    pub fn is_unique_violation(e: &DbErr) -> bool {
        let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))) = e
        else {
            return false;
        };
        e.as_database_error()
            .is_some_and(|db| db.kind() == sea_orm::sqlx::error::ErrorKind::UniqueViolation)
    }

    /// True for the transient failures of concurrent writers (deadlock, serialization
    /// failure, SQLite busy), after which the whole transaction can simply run again.
    pub fn is_retryable(&self) -> bool {
        if matches!(self, StoreError::Conflict) {
            return true;
        }
        let (StoreError::Db(DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)))
        | StoreError::Db(DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)))) = self
        else {
            return false;
        };
        let Some(db) = e.as_database_error() else {
            return false;
        };
        let code = db.code().unwrap_or_default();
        // PostgreSQL and MySQL SQLSTATEs for deadlock / serialization failure; SQLite's
        // BUSY (5), LOCKED (6) and BUSY_SNAPSHOT (517).
        matches!(&*code, "40001" | "40P01" | "5" | "6" | "517")
            || db
                .try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|m| matches!(m.number(), 1205 | 1213))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(StoreError::Conflict.is_retryable());
        assert!(!StoreError::AlreadyComplete(1).is_retryable());
        assert!(!StoreError::invalid("reason", "too long").is_retryable());
        assert!(!StoreError::Db(DbErr::Custom("x".into())).is_retryable());
    }
}
