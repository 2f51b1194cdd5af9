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

/// The PostgreSQL statement: checks, then every write conditional on them.
fn postgres_add(plan: &Plan<'_>, patch_ids: &[i32]) -> Sql {
    let mut sql = Sql::default();
    let input = plan.input;
    // Each entry of the input's stamps: an id given, or the hash of a description.
    let mut patch_of = patch_ids.iter();
    let mut stamps: Vec<(String, Option<i32>, &SourceStampSpec)> = plan
        .specs
        .iter()
        .map(|spec| {
            let patchid = spec.patch.as_ref().and_then(|_| patch_of.next().copied());
            let hash = sourcestamp_hash(
                spec.branch.as_deref(),
                spec.revision.as_deref(),
                &spec.repository,
                &spec.project,
                &spec.codebase,
                patchid,
            );
            (hash, patchid, *spec)
        })
        .collect();
    sql.push("WITH s_in(ord, ssid, ss_hash) AS (VALUES ");
    sql.each(plan.refs.iter().enumerate(), ", ", |sql, (i, r)| {
        let (ssid, hash) = match r {
            Ref::Given(id) => (Some(*id), None),
            Ref::Spec(n) => (None, Some(stamps[*n].0.clone())),
        };
        sql.push(&format!("({i}, "))
            .bind_as(ssid, "int")
            .push(", ")
            .bind_as(hash, "text")
            .push(")");
    });
    sql.push("), b_in(ord, id) AS (");
    if input.builderids.is_empty() {
        sql.push("SELECT 0, 0 WHERE false");
    } else {
        sql.push("VALUES ")
            .each(input.builderids.iter().enumerate(), ", ", |sql, (i, b)| {
                sql.push(&format!("({i}, ")).bind_as(*b, "int").push(")");
            });
    }
    // The first reference that does not exist, in the order they are checked.
    sql.push(
        "), missing(ord, field, id) AS (\
         SELECT ord, 'sourcestamps', ssid FROM s_in WHERE ssid IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM sourcestamps x WHERE x.id = s_in.ssid) \
         UNION ALL SELECT 100000 + ord, 'builderids', id FROM b_in \
         WHERE NOT EXISTS (SELECT 1 FROM builders x WHERE x.id = b_in.id)",
    );
    for (n, (field, id)) in plan.builds().into_iter().enumerate() {
        sql.push(&format!(" UNION ALL SELECT {}, '{field}', ", 200_000 + n))
            .bind_as(id, "int")
            .push(" WHERE NOT EXISTS (SELECT 1 FROM builds x WHERE x.id = ")
            .bind_as(id, "int")
            .push(")");
    }
    sql.push("), go AS (SELECT NOT EXISTS (SELECT 1 FROM missing) AS go)");
    let patches: Vec<(i32, &SourceStampSpec)> = stamps
        .iter()
        .filter_map(|(_, id, spec)| id.map(|id| (id, *spec)))
        .collect();
    if !patches.is_empty() {
        sql.push(&format!(
            ", p AS (INSERT INTO patches (id, {PATCH_COLUMNS}) SELECT v.* FROM (VALUES "
        ));
        sql.each(patches, ", ", |sql, (id, spec)| {
            if let Some(patch) = &spec.patch {
                sql.push("(")
                    .bind_as(id, "int")
                    .push(", ")
                    .bind_as(patch.level, "int")
                    .push(", ")
                    .bind_as(base64(&patch.body), "text")
                    .push(", ")
                    .bind_as(patch.author.clone(), "text")
                    .push(", ")
                    .bind_as(patch.comment.clone(), "text")
                    .push(", ")
                    .bind_as(patch.subdir.clone(), "text")
                    .push(")");
            }
        });
        sql.push(") v WHERE (SELECT go FROM go))");
    }
    if !stamps.is_empty() {
        // In hash order: two adds sharing stamps lock them in the same order.
        stamps.sort_by(|a, b| a.0.cmp(&b.0));
        sql.push(&format!(
            ", s AS (INSERT INTO sourcestamps ({STAMP_COLUMNS}) SELECT v.* FROM (VALUES "
        ));
        sql.each(&stamps, ", ", |sql, (hash, patchid, spec)| {
            sql.push("(")
                .bind_as(hash.clone(), "text")
                .push(", ")
                .bind_as(spec.branch.clone(), "text")
                .push(", ")
                .bind_as(spec.revision.clone(), "text")
                .push(", ")
                .bind_as(*patchid, "int")
                .push(", ")
                .bind_as(spec.repository.clone(), "text")
                .push(", ")
                .bind_as(spec.codebase.clone(), "text")
                .push(", ")
                .bind_as(spec.project.clone(), "text")
                .push(", ")
                .bind_as(plan.now, "int")
                .push(")");
        });
        sql.push(
            ") v(h) WHERE (SELECT go FROM go) ORDER BY v.h \
             ON CONFLICT (ss_hash) DO UPDATE SET ss_hash = EXCLUDED.ss_hash RETURNING id, ss_hash), \
             refs AS (SELECT s_in.ord, COALESCE(s_in.ssid, s.id) AS ssid FROM s_in \
             LEFT JOIN s ON s.ss_hash = s_in.ss_hash)",
        );
    } else {
        sql.push(", refs AS (SELECT ord, ssid FROM s_in)");
    }
    sql.push(&format!(
        ", bs AS (INSERT INTO buildsets ({BUILDSET_COLUMNS}) SELECT "
    ));
    sql.each(
        plan.buildset_values().into_iter().zip(BUILDSET_TYPES),
        ", ",
        |sql, (v, ty)| {
            sql.bind_as(v, ty);
        },
    );
    sql.push(" WHERE (SELECT go FROM go) RETURNING *)");
    if !plan.properties.is_empty() {
        sql.push(
            ", pr AS (INSERT INTO buildset_properties (buildsetid, property_name, property_value) \
             SELECT bs.id, v.n, v.v FROM bs, (VALUES ",
        );
        sql.each(&plan.properties, ", ", |sql, (name, value)| {
            sql.push("(")
                .bind_as(name.clone(), "text")
                .push(", ")
                .bind_as(value.clone(), "text")
                .push(")");
        });
        sql.push(") v(n, v))");
    }
    // Rows are numbered in the order the SELECT gives them: the links keep the
    // stamps' order.
    sql.push(
        ", l AS (INSERT INTO buildset_sourcestamps (buildsetid, sourcestampid) \
         SELECT bs.id, refs.ssid FROM bs, refs ORDER BY refs.ord)",
    );
    sql.push(&format!(
        ", br AS (INSERT INTO buildrequests ({REQUEST_COLUMNS}) SELECT bs.id, b_in.id, "
    ))
    .bind_as(input.priority, "int")
    .push(", 0, -1, bs.submitted_at, NULL, ")
    .bind_as(i16::from(input.waited_for), "smallint")
    .push(" FROM bs, b_in ORDER BY b_in.ord RETURNING id, builderid)");
    if let Some(objectid) = plan.bridge {
        sql.push(
            ", os AS (INSERT INTO object_state (objectid, name, value_json) \
             SELECT ",
        )
        .bind_as(objectid, "int")
        .push(", 'announce:' || bs.id, ")
        .bind_as(plan.bridge_value(), "text")
        .push(" FROM bs ON CONFLICT DO NOTHING)");
    }
    // Delivered at commit (never for a rollback), added before completed.
    sql.push(", told AS (SELECT pg_notify(")
        .bind_as(super::feed::CHANNEL, "text")
        .push(", k.kind || bs.id) FROM bs, (VALUES (1, 'a:')");
    if plan.done() {
        sql.push(", (2, 'c:')");
    }
    sql.push(
        ") k(ord, kind) ORDER BY k.ord) \
         SELECT bs.*, (SELECT count(*) FROM told) AS told, \
         (SELECT json_agg(json_build_array(br.builderid, br.id)) FROM br)::text AS brids, \
         (SELECT m.field FROM missing m ORDER BY m.ord LIMIT 1) AS missing_field, \
         (SELECT m.id FROM missing m ORDER BY m.ord LIMIT 1) AS missing_id \
         FROM (SELECT 1) AS one LEFT JOIN bs ON true",
    );
    sql
}

/// The MySQL/MariaDB compound statement. In its own transaction (`Own`) any error
/// rolls it back before it reaches the caller.
fn mysql_add(plan: &Plan<'_>, transaction: Transaction) -> Sql {
    let mut sql = Sql::default();
    let input = plan.input;
    let n = plan.specs.len();
    sql.push(
        "BEGIN NOT ATOMIC \
         DECLARE v_bsid INT DEFAULT NULL; \
         DECLARE v_field VARCHAR(32) DEFAULT NULL; \
         DECLARE v_missing INT DEFAULT NULL; \
         DECLARE v_brids LONGTEXT DEFAULT NULL; \
         DECLARE v_warnings INT DEFAULT 0; \
         DECLARE v_rows INT DEFAULT 0; ",
    );
    for i in 0..n {
        sql.push(&format!(
            "DECLARE v_p{i} INT DEFAULT NULL; DECLARE v_h{i} VARCHAR(40) CHARACTER SET ascii DEFAULT NULL; \
             DECLARE v_s{i} INT DEFAULT NULL; "
        ));
    }
    if transaction == Transaction::Own {
        sql.push(
            "DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END; \
             START TRANSACTION; ",
        );
    }
    // The first reference that does not exist, in the order they are checked:
    // each check that finds one overwrites the one before, so they run last
    // first. (A LEFT JOIN, not NOT EXISTS: MariaDB 10.11 fails to run such an
    // anti-join over a derived table of binds a second time in a prepared block.)
    let given: Vec<i32> = plan.given().collect();
    let missing = |sql: &mut Sql, field: &str, table: &str, ids: &[i32]| {
        sql.push(&format!(
            "SELECT '{field}', v.id INTO v_field, v_missing FROM ("
        ));
        sql.each(ids.iter().enumerate(), " UNION ALL ", |sql, (i, id)| {
            sql.push("SELECT ")
                .bind(*id)
                .push(&format!(" AS id, {i} AS o"));
        });
        sql.push(&format!(
            ") v LEFT JOIN {table} x ON x.id = v.id WHERE x.id IS NULL ORDER BY v.o LIMIT 1; "
        ));
    };
    for (field, id) in plan.builds().into_iter().rev() {
        missing(&mut sql, field, "builds", &[id]);
    }
    if !input.builderids.is_empty() {
        missing(&mut sql, "builderids", "builders", &input.builderids);
    }
    if !given.is_empty() {
        missing(&mut sql, "sourcestamps", "sourcestamps", &given);
    }
    sql.push("IF v_field IS NULL THEN ");
    for (i, spec) in plan.specs.iter().enumerate() {
        let prefix = || {
            sourcestamp_hash_prefix(
                spec.branch.as_deref(),
                spec.revision.as_deref(),
                &spec.repository,
                &spec.project,
                &spec.codebase,
            )
        };
        match &spec.patch {
            Some(patch) => {
                sql.push(&format!("INSERT INTO patches ({PATCH_COLUMNS}) VALUES ("))
                    .bind(patch.level)
                    .push(", ")
                    .bind(base64(&patch.body))
                    .push(", ")
                    .bind(patch.author.clone())
                    .push(", ")
                    .bind(patch.comment.clone())
                    .push(", ")
                    .bind(patch.subdir.clone())
                    .push(&format!("); SET v_p{i} = LAST_INSERT_ID(); "))
                    // The hash ends with the patch id's decimal text.
                    .push(&format!("SET v_h{i} = SHA1(CONCAT("))
                    .bind(prefix())
                    .push(&format!(", v_p{i})); "));
            }
            None => {
                let hash = sourcestamp_hash(
                    spec.branch.as_deref(),
                    spec.revision.as_deref(),
                    &spec.repository,
                    &spec.project,
                    &spec.codebase,
                    None,
                );
                sql.push(&format!("SET v_h{i} = ")).bind(hash).push("; ");
            }
        }
    }
    if n > 0 {
        // INSERT IGNORE waits on a shared lock for an uncommitted duplicate, and
        // the locking reads then see the committed winner. IGNORE turns every
        // error into a warning, not only the duplicate it is there for: any other
        // (input is checked to fit before this) fails the add.
        sql.push(&format!(
            "INSERT IGNORE INTO sourcestamps ({STAMP_COLUMNS}) VALUES "
        ));
        sql.each(plan.specs.iter().enumerate(), ", ", |sql, (i, spec)| {
            sql.push(&format!("(v_h{i}, "))
                .bind(spec.branch.clone())
                .push(", ")
                .bind(spec.revision.clone())
                .push(&format!(", v_p{i}, "))
                .bind(spec.repository.clone())
                .push(", ")
                .bind(spec.codebase.clone())
                .push(", ")
                .bind(spec.project.clone())
                .push(", ")
                .bind(plan.now)
                .push(")");
        });
        sql.push(&format!(
            "; GET DIAGNOSTICS v_warnings = NUMBER, v_rows = ROW_COUNT; \
             IF v_warnings > {n} - v_rows THEN SIGNAL SQLSTATE 'HY000' SET MESSAGE_TEXT = \
             'INSERT IGNORE INTO sourcestamps warned of more than duplicate keys'; END IF; "
        ));
        for i in 0..n {
            sql.push(&format!(
                "SELECT id INTO v_s{i} FROM sourcestamps WHERE ss_hash = v_h{i} LOCK IN SHARE MODE; "
            ));
        }
        // A duplicate's row gone by the time it is read (its writer rolled back):
        // a transient conflict, so the add runs again (SQLSTATE 40001).
        sql.push("IF ");
        sql.each(0..n, " OR ", |sql, i| {
            sql.push(&format!("v_s{i} IS NULL"));
        });
        sql.push(
            " THEN SIGNAL SQLSTATE '40001' SET MESSAGE_TEXT = \
             'a sourcestamp was rolled back by its writer'; END IF; ",
        );
    }
    sql.push(&format!(
        "INSERT INTO buildsets ({BUILDSET_COLUMNS}) VALUES ("
    ));
    sql.each(plan.buildset_values(), ", ", |sql, v| {
        sql.bind(v);
    });
    sql.push("); SET v_bsid = LAST_INSERT_ID(); ");
    if !plan.properties.is_empty() {
        sql.push(
            "INSERT INTO buildset_properties (buildsetid, property_name, property_value) VALUES ",
        );
        sql.each(&plan.properties, ", ", |sql, (name, value)| {
            sql.push("(v_bsid, ")
                .bind(name.clone())
                .push(", ")
                .bind(value.clone())
                .push(")");
        });
        sql.push("; ");
    }
    // A single INSERT numbers its rows in the order given: the links keep the
    // stamps' order.
    sql.push("INSERT INTO buildset_sourcestamps (buildsetid, sourcestampid) VALUES ");
    sql.each(&plan.refs, ", ", |sql, r| {
        match r {
            Ref::Given(id) => sql.push("(v_bsid, ").bind(*id).push(")"),
            Ref::Spec(i) => sql.push(&format!("(v_bsid, v_s{i})")),
        };
    });
    sql.push("; ");
    if !input.builderids.is_empty() {
        sql.push(&format!(
            "INSERT INTO buildrequests ({REQUEST_COLUMNS}) VALUES "
        ));
        sql.each(&input.builderids, ", ", |sql, b| {
            sql.push("(v_bsid, ")
                .bind(*b)
                .push(", ")
                .bind(input.priority)
                .push(", 0, -1, ")
                .bind(plan.submitted_at)
                .push(", NULL, ")
                .bind(i16::from(input.waited_for))
                .push(")");
        });
        sql.push(
            "; SET v_brids = (SELECT JSON_ARRAYAGG(JSON_ARRAY(builderid, id)) \
             FROM buildrequests WHERE buildsetid = v_bsid); ",
        );
    }
    if let Some(objectid) = plan.bridge {
        sql.push("INSERT IGNORE INTO object_state (objectid, name, value_json) VALUES (")
            .bind(objectid)
            .push(", CONCAT('announce:', v_bsid), ")
            .bind(plan.bridge_value())
            .push("); ");
    }
    sql.push(
        "END IF; \
         SELECT v_field AS missing_field, v_missing AS missing_id, v_brids AS brids, b.* \
         FROM (SELECT 1 AS one) AS one LEFT JOIN buildsets b ON b.id = v_bsid; ",
    );
    if transaction == Transaction::Own {
        sql.push("COMMIT; ");
    }
    sql.push("END");
    sql
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

/// MySQL/MariaDB's completion as one compound statement: the conditional UPDATE
/// (its own transaction), then the row as it left it, with whether it changed.
pub(super) fn mysql_complete(
    mode: SchemaMode,
    bsid: i32,
    results: i16,
    complete_at: i32,
) -> Statement {
    let mut sql = Sql::default();
    sql.push(
        "BEGIN NOT ATOMIC DECLARE v_changed INT DEFAULT 0; \
         UPDATE buildsets SET complete = 1, results = ",
    )
    .bind(results)
    .push(", complete_at = ")
    .bind(complete_at)
    .push(" WHERE id = ")
    .bind(bsid)
    .push(" AND complete <> 1");
    if mode == SchemaMode::Attached {
        // Not while a build request is unfinished: the master owns those.
        sql.push(" AND NOT EXISTS (SELECT 1 FROM buildrequests WHERE buildsetid = ")
            .bind(bsid)
            .push(" AND COALESCE(complete, 0) <> 1)");
    }
    sql.push(
        "; SET v_changed = ROW_COUNT(); \
         SELECT v_changed AS changed, b.* FROM buildsets b WHERE b.id = ",
    )
    .bind(bsid)
    .push("; END");
    sql.statement(DbBackend::MySql)
}

/// Reads [`mysql_complete`]'s answer: the row if the UPDATE changed it; else
/// whether it is missing or complete, or `None` (look again why).
pub(super) fn mysql_completed(
    rows: &[QueryResult],
) -> StoreResult<Result<BuildsetRow, Option<StoreError>>> {
    let Some(row) = rows.last() else {
        return Ok(Err(None));
    };
    let changed: Option<i32> = row.try_get("", "changed")?;
    let model = buildsets::Model::from_query_result(row, "")?;
    if changed == Some(1) {
        return Ok(Ok(model.into()));
    }
    if model.complete == 1 {
        return Ok(Err(Some(StoreError::AlreadyComplete(model.id))));
    }
    Ok(Err(None))
}
