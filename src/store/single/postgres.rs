//! The PostgreSQL add: one statement of data-modifying CTEs.

use super::*;

/// The PostgreSQL statement: checks, then every write conditional on them.
pub(super) fn postgres_add(plan: &Plan<'_>, patch_ids: &[i32]) -> Sql {
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
        .bind_as(crate::store::feed::CHANNEL, "text")
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
