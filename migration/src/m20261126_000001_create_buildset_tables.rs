use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000001_create_buildset_tables"
    }
}

/// Column types that differ between backends; everything else is spelled the same.
struct Dialect {
    /// The integer primary key column definition.
    pk: &'static str,
    /// Trailing table options.
    table_suffix: &'static str,
}

fn dialect(backend: DbBackend) -> Dialect {
    match backend {
        DbBackend::Postgres => Dialect {
            pk: "id SERIAL NOT NULL",
            table_suffix: "",
        },
        DbBackend::MySql => Dialect {
            pk: "id INTEGER NOT NULL AUTO_INCREMENT",
            table_suffix: " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        },
        // Buildbot's SQLite ids are plain rowid aliases, without AUTOINCREMENT.
        _ => Dialect {
            pk: "id INTEGER NOT NULL",
            table_suffix: "",
        },
    }
}

pub fn create_statements(backend: DbBackend) -> Vec<String> {
    let Dialect {
        pk,
        table_suffix: sfx,
    } = dialect(backend);
    vec![
        format!(
            "CREATE TABLE patches (\n\t{pk},\n\tpatchlevel INTEGER NOT NULL,\n\tpatch_base64 TEXT NOT NULL,\n\tpatch_author TEXT NOT NULL,\n\tpatch_comment TEXT NOT NULL,\n\tsubdir TEXT,\n\tPRIMARY KEY (id)\n){sfx}"
        ),
        format!(
            "CREATE TABLE sourcestamps (\n\t{pk},\n\tss_hash VARCHAR(40) NOT NULL,\n\tbranch VARCHAR(256),\n\trevision VARCHAR(256),\n\tpatchid INTEGER,\n\trepository VARCHAR(512) DEFAULT '' NOT NULL,\n\tcodebase VARCHAR(256) DEFAULT '' NOT NULL,\n\tproject VARCHAR(512) DEFAULT '' NOT NULL,\n\tcreated_at INTEGER NOT NULL,\n\tPRIMARY KEY (id),\n\tFOREIGN KEY(patchid) REFERENCES patches (id) ON DELETE CASCADE\n){sfx}"
        ),
        format!(
            "CREATE TABLE buildsets (\n\t{pk},\n\texternal_idstring VARCHAR(256),\n\treason VARCHAR(256),\n\tsubmitted_at INTEGER NOT NULL,\n\tcomplete SMALLINT DEFAULT '0' NOT NULL,\n\tcomplete_at INTEGER,\n\tresults SMALLINT,\n\tparent_buildid INTEGER,\n\tparent_relationship TEXT,\n\trebuilt_buildid INTEGER,\n\tPRIMARY KEY (id)\n){sfx}"
        ),
        format!(
            "CREATE TABLE buildset_properties (\n\tbuildsetid INTEGER NOT NULL,\n\tproperty_name VARCHAR(256) NOT NULL,\n\tproperty_value TEXT NOT NULL,\n\tFOREIGN KEY(buildsetid) REFERENCES buildsets (id) ON DELETE CASCADE\n){sfx}"
        ),
        format!(
            "CREATE TABLE buildset_sourcestamps (\n\t{pk},\n\tbuildsetid INTEGER NOT NULL,\n\tsourcestampid INTEGER NOT NULL,\n\tPRIMARY KEY (id),\n\tFOREIGN KEY(buildsetid) REFERENCES buildsets (id) ON DELETE CASCADE,\n\tFOREIGN KEY(sourcestampid) REFERENCES sourcestamps (id) ON DELETE CASCADE\n){sfx}"
        ),
        format!(
            "CREATE TABLE builders (\n\t{pk},\n\tname TEXT NOT NULL,\n\tdescription TEXT,\n\tdescription_format TEXT,\n\tdescription_html TEXT,\n\tprojectid INTEGER,\n\tname_hash VARCHAR(40) NOT NULL,\n\tPRIMARY KEY (id)\n){sfx}"
        ),
        format!(
            "CREATE TABLE buildrequests (\n\t{pk},\n\tbuildsetid INTEGER NOT NULL,\n\tbuilderid INTEGER NOT NULL,\n\tpriority INTEGER DEFAULT '0' NOT NULL,\n\tcomplete INTEGER DEFAULT '0',\n\tresults SMALLINT,\n\tsubmitted_at INTEGER NOT NULL,\n\tcomplete_at INTEGER,\n\twaited_for SMALLINT DEFAULT '0',\n\tPRIMARY KEY (id),\n\tFOREIGN KEY(buildsetid) REFERENCES buildsets (id) ON DELETE CASCADE,\n\tFOREIGN KEY(builderid) REFERENCES builders (id) ON DELETE CASCADE\n){sfx}"
        ),
        "CREATE UNIQUE INDEX sourcestamps_ss_hash_key ON sourcestamps (ss_hash)".into(),
        "CREATE INDEX buildsets_complete ON buildsets (complete)".into(),
        "CREATE INDEX buildsets_submitted_at ON buildsets (submitted_at)".into(),
        "CREATE INDEX buildset_properties_buildsetid ON buildset_properties (buildsetid)".into(),
        "CREATE INDEX buildset_sourcestamps_buildsetid ON buildset_sourcestamps (buildsetid)"
            .into(),
        "CREATE UNIQUE INDEX buildset_sourcestamps_unique ON buildset_sourcestamps (buildsetid, sourcestampid)".into(),
        "CREATE UNIQUE INDEX builder_name_hash ON builders (name_hash)".into(),
        "CREATE INDEX builders_projectid ON builders (projectid)".into(),
        "CREATE INDEX buildrequests_buildsetid ON buildrequests (buildsetid)".into(),
        "CREATE INDEX buildrequests_builderid ON buildrequests (builderid)".into(),
        "CREATE INDEX buildrequests_complete ON buildrequests (complete)".into(),
    ]
}

/// Tables in reverse dependency order, for `down`.
const TABLES: [&str; 7] = [
    "buildrequests",
    "builders",
    "buildset_sourcestamps",
    "buildset_properties",
    "buildsets",
    "sourcestamps",
    "patches",
];

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in create_statements(manager.get_database_backend()) {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for table in TABLES {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        Ok(())
    }
}
