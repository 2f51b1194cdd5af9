//! The MySQL/MariaDB add and completion: one anonymous block (`BEGIN NOT ATOMIC`) each.

use super::*;

/// The MySQL/MariaDB compound statement. In its own transaction (`Own`) any error
/// rolls it back before it reaches the caller.
pub(super) fn mysql_add(plan: &Plan<'_>, transaction: Transaction) -> Sql {
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

/// MySQL/MariaDB's completion as one compound statement: the conditional UPDATE
/// (its own transaction), then the row as it left it, with whether it changed.
pub(in crate::store) fn mysql_complete(
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
pub(in crate::store) fn mysql_completed(
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
