//! Reads: single rows by id and the batch readers (`WHERE … IN (…)`) that let the
//! page loader (`graph.rs`) read one relation level of a whole page in one statement.

use entity::{
    builders, buildrequests, builds, buildset_properties, buildset_sourcestamps, buildsets,
    patches, sourcestamps,
};
use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::graph::StampView;
use super::rows::{
    self, BuildRequestRow, BuildRow, BuilderRow, BuildsetRow, PatchRow, SourceStampRow,
};
use super::tag::Charge;
use super::{json, Property, StoreResult};

/// `ids` sorted, each once: the list for an `IN (…)`.
pub(crate) fn distinct(mut ids: Vec<i32>) -> Vec<i32> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The rows of `E` whose `column` is one of `values`, in one `IN` query (none for an
/// empty list).
async fn where_in<E>(
    db: &impl ConnectionTrait,
    column: E::Column,
    values: &[i32],
) -> StoreResult<Vec<E::Model>>
where
    E: EntityTrait,
{
    if values.is_empty() {
        return Ok(Vec::new());
    }
    Ok(E::find()
        .filter(column.is_in(values.iter().copied()))
        .all(db)
        .await?)
}

/// Buildbot's `getBuildset`: the buildset or `None`. Never cached.
pub async fn get_buildset(
    db: &impl ConnectionTrait,
    bsid: i32,
) -> StoreResult<Option<BuildsetRow>> {
    Ok(buildsets::Entity::find_by_id(bsid)
        .one(db)
        .await?
        .map(BuildsetRow::from))
}

pub async fn buildsets_by_ids(
    db: &impl ConnectionTrait,
    ids: &[i32],
) -> StoreResult<Vec<BuildsetRow>> {
    Ok(rows::all(
        where_in::<buildsets::Entity>(db, buildsets::Column::Id, ids).await?,
    ))
}

/// The sourcestamps of each buildset, as `(bsid, stamp)` in the order given at add time.
///
/// Two indexed lookups (links by buildset, then stamps by id) rather than one join:
/// for more than [`JOINED_AT_MOST`] buildsets PostgreSQL plans that join as a hash
/// join over every sourcestamp, which costs more than both lookups together.
pub async fn sourcestamps_of_buildsets(
    db: &impl ConnectionTrait,
    bsids: &[i32],
) -> StoreResult<Vec<(i32, SourceStampRow)>> {
    if bsids.is_empty() {
        return Ok(Vec::new());
    }
    let links: Vec<(i32, i32)> = buildset_sourcestamps::Entity::find()
        .select_only()
        .column(buildset_sourcestamps::Column::Buildsetid)
        .column(buildset_sourcestamps::Column::Sourcestampid)
        .filter(buildset_sourcestamps::Column::Buildsetid.is_in(bsids.iter().copied()))
        .order_by_asc(buildset_sourcestamps::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let ids = distinct(links.iter().map(|l| l.1).collect());
    let stamps: HashMap<i32, SourceStampRow> = sourcestamps_by_ids(db, &ids)
        .await?
        .into_iter()
        .map(|s| (s.ssid, s))
        .collect();
    Ok(links
        .into_iter()
        .filter_map(|(bsid, ssid)| stamps.get(&ssid).map(|s| (bsid, s.clone())))
        .collect())
}

/// Up to this many buildsets, their stamps (and the stamps' patches) are read in one
/// join, one round trip instead of two or three. PostgreSQL walks the indexes for
/// so few (100 buildsets of Buildbot-written data with 20,000 stamps: nested loops,
/// 0.7 ms); from about 150 it switches to a hash join over every sourcestamp
/// (6-12 ms at 200-1,000), so larger sets take the separate indexed lookups. A
/// smaller table lowers that point only where a scan of it is cheap.
const JOINED_AT_MOST: usize = 100;

/// The sourcestamps of each buildset with their patches when asked, as `(bsid,
/// stamp)` in the order given at add time; `None` when `bsids` is too many for one
/// join (then [`sourcestamps_of_buildsets`] and a patch lookup serve).
pub async fn stamp_views_of_few_buildsets(
    db: &(impl ConnectionTrait + Charge),
    bsids: &[i32],
    with_patches: bool,
) -> StoreResult<Option<Vec<(i32, StampView)>>> {
    if bsids.len() > JOINED_AT_MOST {
        return Ok(None);
    }
    if bsids.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let links = buildset_sourcestamps::Entity::find()
        .filter(buildset_sourcestamps::Column::Buildsetid.is_in(bsids.iter().copied()))
        .order_by_asc(buildset_sourcestamps::Column::Id);
    if !with_patches {
        let rows = links
            .find_also_related(sourcestamps::Entity)
            .all(db)
            .await?;
        return Ok(Some(
            rows.into_iter()
                .filter_map(|(link, stamp)| {
                    stamp.map(|s| {
                        (
                            link.buildsetid,
                            StampView {
                                row: s.into(),
                                patch: None,
                            },
                        )
                    })
                })
                .collect(),
        ));
    }
    let rows = links
        .find_also_related(sourcestamps::Entity)
        .and_also_related(patches::Entity)
        .all(db)
        .await?;
    db.charge(
        rows.iter()
            .filter_map(|(_, _, p)| p.as_ref().map(|p| p.patch_base64.len()))
            .sum(),
    )?;
    Ok(Some(
        rows.into_iter()
            .filter_map(|(link, stamp, patch)| {
                let stamp = stamp?;
                Some((
                    link.buildsetid,
                    StampView {
                        row: stamp.into(),
                        patch: Some(patch.map(PatchRow::from)),
                    },
                ))
            })
            .collect(),
    ))
}

/// One buildset with its sourcestamps (in the order given at add time) and their
/// patches when asked, in one statement: what `buildset(bsid:)` shows most often.
pub async fn buildset_with_stamps(
    db: &(impl ConnectionTrait + Charge),
    bsid: i32,
    with_patches: bool,
) -> StoreResult<Option<(BuildsetRow, Vec<StampView>)>> {
    let joined = buildsets::Entity::find_by_id(bsid)
        .find_also_related(buildset_sourcestamps::Entity)
        .and_also_related(sourcestamps::Entity)
        .order_by_asc(buildset_sourcestamps::Column::Id);
    // (buildset, stamp, patch), the patch `None` when not asked, as in StampView.
    let rows: Vec<(
        buildsets::Model,
        Option<sourcestamps::Model>,
        Option<Option<patches::Model>>,
    )> = if with_patches {
        let rows = joined
            .find_also(sourcestamps::Entity, patches::Entity)
            .all(db)
            .await?;
        db.charge(
            rows.iter()
                .filter_map(|(_, _, _, p)| p.as_ref().map(|p| p.patch_base64.len()))
                .sum(),
        )?;
        rows.into_iter()
            .map(|(b, _, s, p)| (b, s, Some(p)))
            .collect()
    } else {
        let rows = joined.all(db).await?;
        rows.into_iter().map(|(b, _, s)| (b, s, None)).collect()
    };
    let mut rows = rows.into_iter();
    let Some((buildset, stamp, patch)) = rows.next() else {
        return Ok(None);
    };
    let stamps = std::iter::once((stamp, patch))
        .chain(rows.map(|(_, s, p)| (s, p)))
        .filter_map(|(stamp, patch)| {
            Some(StampView {
                row: stamp?.into(),
                patch: patch.map(|p| p.map(PatchRow::from)),
            })
        })
        .collect();
    Ok(Some((buildset.into(), stamps)))
}

pub async fn sourcestamps_by_ids(
    db: &impl ConnectionTrait,
    ids: &[i32],
) -> StoreResult<Vec<SourceStampRow>> {
    Ok(rows::all(
        where_in::<sourcestamps::Entity>(db, sourcestamps::Column::Id, ids).await?,
    ))
}

pub async fn patches_by_ids(
    db: &(impl ConnectionTrait + Charge),
    ids: &[i32],
) -> StoreResult<Vec<PatchRow>> {
    let found = where_in::<patches::Entity>(db, patches::Column::Id, ids).await?;
    db.charge(found.iter().map(|p| p.patch_base64.len()).sum())?;
    Ok(rows::all(found))
}

/// The properties of each buildset as `(bsid, property)`, sorted by bsid then name;
/// rows whose JSON cannot be read are skipped, as Buildbot skips them.
pub async fn properties_of_buildsets(
    db: &(impl ConnectionTrait + Charge),
    bsids: &[i32],
) -> StoreResult<Vec<(i32, Property)>> {
    let rows =
        where_in::<buildset_properties::Entity>(db, buildset_properties::Column::Buildsetid, bsids)
            .await?;
    db.charge(
        rows.iter()
            .map(|r| json::decoded_weight(&r.property_value))
            .sum(),
    )?;
    let mut props: Vec<(i32, Property)> = rows
        .into_iter()
        .filter_map(|row| {
            let Some((value, source)) = json::decode_property(&row.property_value) else {
                tracing::warn!(
                    bsid = row.buildsetid,
                    name = %row.property_name,
                    "skipping a buildset property whose value is not a JSON [value, source] pair"
                );
                return None;
            };
            Some((
                row.buildsetid,
                Property {
                    name: row.property_name,
                    value,
                    source,
                },
            ))
        })
        .collect();
    props.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    Ok(props)
}

/// Buildbot's `getBuildsetProperties`: empty for an unknown buildset.
pub async fn get_buildset_properties(
    db: &(impl ConnectionTrait + Charge),
    bsid: i32,
) -> StoreResult<Vec<Property>> {
    Ok(properties_of_buildsets(db, &[bsid])
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// The build requests of each buildset, by id.
pub async fn buildrequests_of_buildsets(
    db: &impl ConnectionTrait,
    bsids: &[i32],
) -> StoreResult<Vec<BuildRequestRow>> {
    let mut rows =
        where_in::<buildrequests::Entity>(db, buildrequests::Column::Buildsetid, bsids).await?;
    rows.sort_unstable_by_key(|r| r.id);
    Ok(rows::all(rows))
}

pub async fn buildrequests_by_ids(
    db: &impl ConnectionTrait,
    ids: &[i32],
) -> StoreResult<Vec<BuildRequestRow>> {
    Ok(rows::all(
        where_in::<buildrequests::Entity>(db, buildrequests::Column::Id, ids).await?,
    ))
}

pub async fn builders_by_ids(
    db: &impl ConnectionTrait,
    ids: &[i32],
) -> StoreResult<Vec<BuilderRow>> {
    Ok(rows::all(
        where_in::<builders::Entity>(db, builders::Column::Id, ids).await?,
    ))
}

/// Every builder, by id.
pub async fn all_builders(db: &impl ConnectionTrait) -> StoreResult<Vec<BuilderRow>> {
    Ok(rows::all(
        builders::Entity::find()
            .order_by_asc(builders::Column::Id)
            .all(db)
            .await?,
    ))
}

/// Builds by id (Buildbot's `builds`; attached mode only).
pub async fn builds_by_ids(db: &impl ConnectionTrait, ids: &[i32]) -> StoreResult<Vec<BuildRow>> {
    Ok(rows::all(
        where_in::<builds::Entity>(db, builds::Column::Id, ids).await?,
    ))
}

/// The builds of build requests, by id (Buildbot's `builds`; attached mode only).
pub async fn builds_of_requests(
    db: &impl ConnectionTrait,
    brids: &[i32],
) -> StoreResult<Vec<BuildRow>> {
    if brids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(builds::Entity::find()
        .filter(builds::Column::Buildrequestid.is_in(brids.iter().copied()))
        .order_by_asc(builds::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(BuildRow::from)
        .collect())
}
