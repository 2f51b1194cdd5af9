//! Loading nested data for a whole page at once: one `WHERE … IN (…)` per relation
//! level, planned from the selection, with independent levels run concurrently. A
//! page of any size costs the same number of statements.

use std::collections::HashMap;

use async_graphql::{Context, Lookahead, Result};
use entity::{buildrequests, buildsets, sourcestamps};
use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;

use super::types::{BuildRequest, Builder, Buildset, Patch, Property, SourceStamp};
use super::{app, StoreResultExt};
use crate::store::read;

/// Which relations of a set of buildsets a query selects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub stamps: bool,
    pub patches: bool,
    pub props: bool,
    pub requests: bool,
    pub builders: bool,
    /// What a build request's `buildset` selects in turn.
    pub request_buildset: Option<Box<Plan>>,
}

impl Plan {
    /// The plan for buildsets selected at `l` (a field whose type is Buildset).
    pub fn buildset(l: &Lookahead<'_>) -> Plan {
        let stamps = l.field("sourcestamps");
        let requests = l.field("buildrequests");
        let mut plan = Plan {
            stamps: stamps.exists() || l.field("sourcestampIds").exists(),
            patches: stamps.field("patch").exists(),
            props: l.field("properties").exists() || l.field("property").exists(),
            ..Plan::default()
        };
        plan.add_requests(&requests);
        plan
    }

    /// Adds what build requests selected at `l` need.
    pub fn add_requests(&mut self, l: &Lookahead<'_>) {
        if !l.exists() {
            return;
        }
        self.requests = true;
        self.builders |= l.field("builder").exists();
        let bs = l.field("buildset");
        if bs.exists() {
            self.request_buildset = Some(Box::new(Plan::buildset(&bs)));
        }
    }

    /// The union of two plans (a page selected through both `nodes` and `edges`).
    pub fn merge(self, other: Plan) -> Plan {
        let request_buildset = match (self.request_buildset, other.request_buildset) {
            (Some(a), Some(b)) => Some(Box::new(a.merge(*b))),
            (a, b) => a.or(b),
        };
        Plan {
            stamps: self.stamps || other.stamps,
            patches: self.patches || other.patches,
            props: self.props || other.props,
            requests: self.requests || other.requests,
            builders: self.builders || other.builders,
            request_buildset,
        }
    }
}

fn filled<T>(value: Option<T>) -> OnceCell<T> {
    value.map(OnceCell::from).unwrap_or_default()
}

fn group<T, K: std::hash::Hash + Eq>(items: Vec<(K, T)>) -> HashMap<K, Vec<T>> {
    let mut map: HashMap<K, Vec<T>> = HashMap::new();
    for (k, v) in items {
        map.entry(k).or_default().push(v);
    }
    map
}

/// Fills in every relation `plan` asks for, for all `rows` at once, keeping their order.
pub fn buildsets<'a>(
    ctx: &'a Context<'_>,
    rows: Vec<buildsets::Model>,
    plan: &'a Plan,
) -> BoxFuture<'a, Result<Vec<Buildset>>> {
    Box::pin(async move {
        let db = &app(ctx)?.db;
        let ids: Vec<i32> = rows.iter().map(|r| r.id).collect();
        // The parents of a page's build requests are the page's own buildsets.
        let known: HashMap<i32, buildsets::Model> = if plan.request_buildset.is_some() {
            rows.iter().map(|r| (r.id, r.clone())).collect()
        } else {
            HashMap::new()
        };
        let stamps_fut = async {
            if !plan.stamps || ids.is_empty() {
                return Ok(None);
            }
            let links = read::sourcestamps_of_buildsets(db, &ids).await.gql(ctx)?;
            let (owners, stamps): (Vec<i32>, Vec<sourcestamps::Model>) = links.into_iter().unzip();
            let stamps = sourcestamps(ctx, stamps, plan.patches).await?;
            Ok::<_, async_graphql::Error>(Some(group(owners.into_iter().zip(stamps).collect())))
        };
        let props_fut = async {
            if !plan.props || ids.is_empty() {
                return Ok(None);
            }
            let props = read::properties_of_buildsets(db, &ids).await.gql(ctx)?;
            Ok::<_, async_graphql::Error>(Some(group(
                props.into_iter().map(|(id, p)| (id, Property(p))).collect(),
            )))
        };
        let requests_fut = async {
            if !plan.requests || ids.is_empty() {
                return Ok(None);
            }
            let rows = read::buildrequests_of_buildsets(db, &ids).await.gql(ctx)?;
            let requests = buildrequests(ctx, rows, plan, Some(&known)).await?;
            Ok::<_, async_graphql::Error>(Some(group(
                requests
                    .into_iter()
                    .map(|r| (r.row.buildsetid, r))
                    .collect(),
            )))
        };
        let (mut stamps, mut props, mut requests) =
            futures_util::future::try_join3(stamps_fut, props_fut, requests_fut).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let id = row.id;
                Buildset {
                    row,
                    stamps: filled(stamps.as_mut().map(|m| m.remove(&id).unwrap_or_default())),
                    props: filled(props.as_mut().map(|m| m.remove(&id).unwrap_or_default())),
                    requests: filled(requests.as_mut().map(|m| m.remove(&id).unwrap_or_default())),
                }
            })
            .collect())
    })
}

/// Adds patches to sourcestamps when asked (one query for all of them).
pub async fn sourcestamps(
    ctx: &Context<'_>,
    rows: Vec<sourcestamps::Model>,
    with_patches: bool,
) -> Result<Vec<SourceStamp>> {
    if !with_patches {
        return Ok(rows
            .into_iter()
            .map(|row| SourceStamp { row, patch: None })
            .collect());
    }
    let mut ids: Vec<i32> = rows.iter().filter_map(|r| r.patchid).collect();
    ids.sort_unstable();
    ids.dedup();
    let patches: HashMap<i32, _> = read::patches_by_ids(&app(ctx)?.db, &ids)
        .await
        .gql(ctx)?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let patch = row
                .patchid
                .and_then(|id| patches.get(&id).cloned())
                .map(Patch);
            SourceStamp {
                row,
                patch: Some(patch),
            }
        })
        .collect())
}

/// Adds builders and buildsets to build requests when asked. `known` holds buildset
/// rows already in hand (a page's own), which need no query.
pub async fn buildrequests(
    ctx: &Context<'_>,
    rows: Vec<buildrequests::Model>,
    plan: &Plan,
    known: Option<&HashMap<i32, buildsets::Model>>,
) -> Result<Vec<BuildRequest>> {
    let db = &app(ctx)?.db;
    let builders_fut = async {
        if !plan.builders {
            return Ok(None);
        }
        let mut ids: Vec<i32> = rows.iter().map(|r| r.builderid).collect();
        ids.sort_unstable();
        ids.dedup();
        let builders = read::builders_by_ids(db, &ids).await.gql(ctx)?;
        Ok::<_, async_graphql::Error>(Some(
            builders
                .into_iter()
                .map(|b| (b.id, b))
                .collect::<HashMap<_, _>>(),
        ))
    };
    let buildsets_fut = async {
        let Some(sub) = &plan.request_buildset else {
            return Ok(None);
        };
        let mut ids: Vec<i32> = rows.iter().map(|r| r.buildsetid).collect();
        ids.sort_unstable();
        ids.dedup();
        let known = known.filter(|k| ids.iter().all(|id| k.contains_key(id)));
        let parents = match known {
            Some(k) => ids.iter().filter_map(|id| k.get(id).cloned()).collect(),
            None => read::buildsets_by_ids(db, &ids).await.gql(ctx)?,
        };
        let loaded = buildsets(ctx, parents, sub).await?;
        Ok::<_, async_graphql::Error>(Some(
            loaded
                .into_iter()
                .map(|b| (b.row.id, b))
                .collect::<HashMap<_, _>>(),
        ))
    };
    let (builders, parents) = futures_util::future::try_join(builders_fut, buildsets_fut).await?;
    Ok(rows
        .into_iter()
        .map(|row| BuildRequest {
            builder: builders
                .as_ref()
                .and_then(|m| m.get(&row.builderid).cloned())
                .map(Builder),
            buildset: parents
                .as_ref()
                .and_then(|m| m.get(&row.buildsetid).cloned())
                .map(Box::new),
            row,
        })
        .collect())
}
