//! Migrations that create Buildbot's buildset tables in an empty database.
//!
//! The DDL is written per backend, as Buildbot's SQLAlchemy model renders it, because
//! the point is to produce the very schema `buildbot upgrade-master` produces (same
//! types, nullability, defaults and index names), which a generic builder does not
//! (it would add AUTOINCREMENT on SQLite and name indexes its own way).

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_buildset_tables;

/// The DDL of the buildset tables for one backend (tests build "Buildbot-made" databases with it).
pub use m20261126_000001_create_buildset_tables::create_statements;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261126_000001_create_buildset_tables::Migration)]
    }
}
