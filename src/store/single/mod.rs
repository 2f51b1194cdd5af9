//! `addBuildset` and `completeBuildset` in a constant number of round trips on
//! PostgreSQL and MySQL/MariaDB: each is one statement sent once, whatever the
//! number of sourcestamps, properties and builders (on PostgreSQL an add with
//! patches first reserves their ids, one round trip more: their ids are part of
//! the stamps' `ss_hash`, which PostgreSQL cannot compute without pgcrypto).
//!
//! - PostgreSQL: data-modifying CTEs in one statement, which runs as its own
//!   (implicit) transaction: no BEGIN and COMMIT round trips, and the answer comes
//!   from its `RETURNING`. Every write is conditional on the references checked in
//!   the same statement, so bad input writes nothing. Stamps are found or created
//!   by `INSERT … ON CONFLICT (ss_hash) DO UPDATE … RETURNING id`: unlike `DO
//!   NOTHING`, it returns the row a concurrent adder committed after this
//!   statement's snapshot was taken (the rows are inserted in hash order, so two
//!   adds lock shared stamps in the same order).
//! - MySQL/MariaDB (no data-modifying CTEs): one compound statement (`BEGIN NOT
//!   ATOMIC … END`, MariaDB's anonymous block, prepared with binds like any other)
//!   that runs the same statements as before (INSERT IGNORE, locking reads) in its
//!   own transaction, rolled back by its handler on any error, and ends with the
//!   answer's SELECT.
//!
//! The hand-written SQL lives here and nowhere else; every value is a bind.

use base64::Engine as _;
use entity::buildsets;
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, QueryResult, Statement, Value};

use super::db::SchemaMode;
use super::hash::{sourcestamp_hash, sourcestamp_hash_prefix};
use super::rows::BuildsetRow;
use super::types::{AddedBuildset, NewBuildset, SourceStampRef, SourceStampSpec};
use super::write::SUCCESS;
use super::{StoreError, StoreResult};

mod mysql;
mod postgres;

use mysql::mysql_add;
pub(super) use mysql::{mysql_complete, mysql_completed};
use postgres::postgres_add;

/// Whether this database takes the add and the completion as one statement:
/// PostgreSQL, and MariaDB (anonymous blocks, from 10.1); not MySQL, which has no
/// anonymous blocks, nor SQLite (in process: no round trips to save). Those keep
/// the transaction of statements.
pub(super) async fn supported(db: &impl ConnectionTrait) -> StoreResult<bool> {
    match db.get_database_backend() {
        DbBackend::Postgres => Ok(true),
        DbBackend::MySql => {
            let version = db
                .query_one_raw(Statement::from_string(DbBackend::MySql, "SELECT VERSION()"))
                .await?;
            Ok(match version {
                Some(row) => row.try_get_by_index::<String>(0)?.contains("MariaDB"),
                None => false,
            })
        }
        _ => Ok(false),
    }
}

/// Whether the statement runs in a transaction of its caller's (which then commits)
/// or is one by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transaction {
    /// The statement is the whole transaction.
    Own,
    /// Inside a transaction the caller began (an answer that loads relations).
    Caller,
}

/// A statement's text with `?` for each value, and the values in order.
#[derive(Default)]
struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn push(&mut self, s: &str) -> &mut Sql {
        self.text.push_str(s);
        self
    }

    fn bind(&mut self, v: impl Into<Value>) -> &mut Sql {
        self.text.push('?');
        self.values.push(v.into());
        self
    }

    /// A bind with a PostgreSQL cast (a value in `VALUES` has no column to take
    /// its type from).
    fn bind_as(&mut self, v: impl Into<Value>, ty: &str) -> &mut Sql {
        self.bind(v).push("::").push(ty)
    }

    /// `f` for each item, separated by `sep`.
    fn each<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        sep: &str,
        mut f: impl FnMut(&mut Sql, T),
    ) -> &mut Sql {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(sep);
            }
            f(self, item);
        }
        self
    }

    fn statement(self, backend: DbBackend) -> Statement {
        Statement::from_sql_and_values(
            backend,
            super::write::numbered(backend, &self.text),
            self.values,
        )
    }
}

/// One entry of the input's sourcestamps: an id given, or the `n`th description.
enum Ref {
    Given(i32),
    Spec(usize),
}

/// The add, its input checked and laid out for one statement.
struct Plan<'a> {
    input: &'a NewBuildset,
    mode: SchemaMode,
    refs: Vec<Ref>,
    specs: Vec<&'a SourceStampSpec>,
    properties: Vec<(String, String)>,
    submitted_at: i32,
    /// When new stamps are dated (and a buildset with no builders completed).
    now: i32,
    bridge: Option<i32>,
}

impl<'a> Plan<'a> {
    fn new(
        input: &'a NewBuildset,
        mode: SchemaMode,
        submitted_at: i32,
        bridge: Option<i32>,
    ) -> StoreResult<Plan<'a>> {
        let mut refs = Vec::with_capacity(input.sourcestamps.len());
        let mut specs = Vec::new();
        let mut given = Vec::new();
        let mut hashes = Vec::new();
        for r in &input.sourcestamps {
            match r {
                SourceStampRef::Id(id) => {
                    if given.contains(id) {
                        return Err(given_twice(&format!("sourcestamp {id}")));
                    }
                    given.push(*id);
                    refs.push(Ref::Given(*id));
                }
                SourceStampRef::Spec(spec) => {
                    // A stamp with a patch is always new; two identical
                    // descriptions without one are the same stamp.
                    if spec.patch.is_none() {
                        let hash = sourcestamp_hash(
                            spec.branch.as_deref(),
                            spec.revision.as_deref(),
                            &spec.repository,
                            &spec.project,
                            &spec.codebase,
                            None,
                        );
                        if hashes.contains(&hash) {
                            return Err(given_twice("the same sourcestamp description"));
                        }
                        hashes.push(hash);
                    }
                    refs.push(Ref::Spec(specs.len()));
                    specs.push(spec);
                }
            }
        }
        let properties = input
            .stored_properties()
            .map(|p| {
                let value = super::json::encode_property(&p.value, &p.source);
                (p.name, value)
            })
            .collect();
        Ok(Plan {
            input,
            mode,
            refs,
            specs,
            properties,
            submitted_at,
            now: super::now(),
            bridge,
        })
    }

    /// With no builder there is nothing to wait for: Buildbot's data API completes
    /// such a buildset at once with SUCCESS, dated now.
    fn done(&self) -> bool {
        self.input.builderids.is_empty()
    }

    fn given(&self) -> impl Iterator<Item = i32> + '_ {
        self.refs.iter().filter_map(|r| match r {
            Ref::Given(id) => Some(*id),
            Ref::Spec(_) => None,
        })
    }

    /// The build ids to check (attached: they reference Buildbot's `builds`).
    fn builds(&self) -> Vec<(&'static str, i32)> {
        if self.mode != SchemaMode::Attached {
            return Vec::new();
        }
        [
            ("parent_buildid", self.input.parent_buildid),
            ("rebuilt_buildid", self.input.rebuilt_buildid),
        ]
        .into_iter()
        .filter_map(|(field, id)| id.map(|id| (field, id)))
        .collect()
    }

    /// The buildset's own columns, in [`BUILDSET_COLUMNS`]' order.
    fn buildset_values(&self) -> [Value; 9] {
        let input = self.input;
        let done = self.done();
        [
            input
                .external_idstring
                .clone()
                .or_else(|| input.idempotency_key.clone())
                .into(),
            input.reason.clone().into(),
            self.submitted_at.into(),
            i16::from(done).into(),
            done.then_some(self.now).into(),
            Some(if done { SUCCESS } else { -1 }).into(),
            input.parent_buildid.into(),
            input.parent_relationship.clone().into(),
            input.rebuilt_buildid.into(),
        ]
    }

    /// The value the bridge's row carries (a buildset complete already is
    /// announced complete too).
    fn bridge_value(&self) -> &'static str {
        if self.done() {
            r#"{"complete": true}"#
        } else {
            "{}"
        }
    }
}

const BUILDSET_COLUMNS: &str = "external_idstring, reason, submitted_at, complete, complete_at, \
     results, parent_buildid, parent_relationship, rebuilt_buildid";
/// Their PostgreSQL types, for the casts of their binds.
const BUILDSET_TYPES: [&str; 9] = [
    "text", "text", "int", "smallint", "int", "smallint", "int", "text", "int",
];
const STAMP_COLUMNS: &str =
    "ss_hash, branch, revision, patchid, repository, codebase, project, created_at";
const PATCH_COLUMNS: &str = "patchlevel, patch_base64, patch_author, patch_comment, subdir";
const REQUEST_COLUMNS: &str =
    "buildsetid, builderid, priority, complete, results, submitted_at, complete_at, waited_for";

fn given_twice(what: &str) -> StoreError {
    StoreError::invalid("sourcestamps", format!("{what} is given twice"))
}

/// Adds a buildset in one statement (two on PostgreSQL when it has patches):
/// returns what was added and the buildset's row as written.
pub(super) async fn add_buildset(
    db: &impl ConnectionTrait,
    mode: SchemaMode,
    input: &NewBuildset,
    submitted_at: i32,
    bridge: Option<i32>,
    transaction: Transaction,
) -> StoreResult<(AddedBuildset, BuildsetRow)> {
    let plan = Plan::new(input, mode, submitted_at, bridge)?;
    let backend = db.get_database_backend();
    let statement = match backend {
        DbBackend::Postgres => {
            let patches = plan.specs.iter().filter(|s| s.patch.is_some()).count();
            let patch_ids = reserve_patch_ids(db, patches).await?;
            postgres_add(&plan, &patch_ids)
        }
        DbBackend::MySql => mysql_add(&plan, transaction),
        _ => {
            return Err(StoreError::Db(sea_orm::DbErr::Custom(
                "the single-statement add is for PostgreSQL and MySQL".into(),
            )))
        }
    };
    let rows = match db.query_all_raw(statement.statement(backend)).await {
        Ok(rows) => rows,
        // The only unique key this statement can break (stamps are found or
        // created, the bridge's rows ignored when there) is (buildsetid,
        // sourcestampid): an id given and a description found to be that stamp.
        Err(e) if StoreError::is_unique_violation(&e) => {
            return Err(given_twice("a sourcestamp (by id and by description)"))
        }
        Err(e) => return Err(e.into()),
    };
    // MySQL answers every statement of the block; the SELECT's row is the one.
    let row = rows.last().ok_or(StoreError::Conflict)?;
    decode_added(row, &plan)
}

/// `n` new ids of `patches`, taken from its sequence (none for 0).
async fn reserve_patch_ids(db: &impl ConnectionTrait, n: usize) -> StoreResult<Vec<i32>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT nextval(pg_get_serial_sequence('patches', 'id'))::int FROM generate_series(1, $1)",
            [Value::from(i32::try_from(n).unwrap_or(i32::MAX))],
        ))
        .await?;
    rows.iter()
        .map(|row| Ok(row.try_get_by_index::<i32>(0)?))
        .collect()
}

fn base64(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(body)
}

/// The answer of either statement: a reference that does not exist, or the
/// buildset's row and its build requests.
fn decode_added(row: &QueryResult, plan: &Plan<'_>) -> StoreResult<(AddedBuildset, BuildsetRow)> {
    let field: Option<String> = row.try_get("", "missing_field")?;
    if let Some(field) = field {
        let id: Option<i32> = row.try_get("", "missing_id")?;
        let id = id.unwrap_or_default();
        let message = match field.as_str() {
            "sourcestamps" => format!("sourcestamp {id} does not exist"),
            "builderids" => format!("builder {id} does not exist"),
            _ => format!("build {id} does not exist"),
        };
        return Err(StoreError::invalid(field, message));
    }
    let model = buildsets::Model::from_query_result(row, "")?;
    let brids: Option<String> = row.try_get("", "brids")?;
    let made: Vec<(i32, i32)> = match brids {
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            StoreError::Db(sea_orm::DbErr::Custom(format!("build request ids: {e}")))
        })?,
        None => Vec::new(),
    };
    // In the order the builders were given.
    let brids = plan
        .input
        .builderids
        .iter()
        .map(|b| {
            made.iter()
                .find(|(builder, _)| builder == b)
                .copied()
                .ok_or(StoreError::Conflict)
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((
        AddedBuildset {
            bsid: model.id,
            brids,
            created: true,
        },
        model.into(),
    ))
}
