//! The page loader: every relation level for a whole set of buildsets, one
//! `WHERE … IN (…)` per level, independent levels concurrently. It is the only way
//! nested data is read, so a page of any size costs the same number of statements.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::db::SchemaMode;
use super::read::{self, distinct};
use super::rows::{BuildRequestRow, BuildRow, BuilderRow, BuildsetRow, PatchRow, SourceStampRow};
use super::tag::{Charge, Operation};
use sea_orm::ConnectionTrait;

use super::{Property, Store, StoreResult};

/// Which relations to load for a set of buildsets (or of build requests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relations {
    pub stamps: bool,
    pub patches: bool,
    pub props: bool,
    pub requests: bool,
    pub builders: bool,
    /// The builds of build requests (attached mode; a standalone database has none).
    pub builds: bool,
    /// What a build request's buildset needs in turn.
    pub request_buildset: Option<Box<Relations>>,
}

impl Relations {
    /// The union of two (a page selected through two paths).
    pub fn merge(self, other: Relations) -> Relations {
        let request_buildset = match (self.request_buildset, other.request_buildset) {
            (Some(a), Some(b)) => Some(Box::new(a.merge(*b))),
            (a, b) => a.or(b),
        };
        Relations {
            stamps: self.stamps || other.stamps,
            patches: self.patches || other.patches,
            props: self.props || other.props,
            requests: self.requests || other.requests,
            builders: self.builders || other.builders,
            builds: self.builds || other.builds,
            request_buildset,
        }
    }
}

/// A buildset with the relations that were asked for (`None`: not loaded).
#[derive(Clone, Debug)]
pub struct BuildsetView {
    pub row: BuildsetRow,
    /// Its sourcestamps, in the order given at add time.
    pub stamps: Option<Vec<StampView>>,
    /// Its properties, sorted by name.
    pub props: Option<Vec<Property>>,
    /// Its build requests, by id.
    pub requests: Option<Vec<RequestView>>,
}

#[derive(Clone, Debug)]
pub struct StampView {
    pub row: SourceStampRow,
    /// `None` when not loaded; `Some(None)` when the stamp has no patch.
    pub patch: Option<Option<PatchRow>>,
}

#[derive(Clone, Debug)]
pub struct RequestView {
    pub row: BuildRequestRow,
    /// Shared by every request of the builder.
    pub builder: Option<Arc<BuilderRow>>,
    /// Shared by every request of the buildset.
    pub buildset: Option<Arc<BuildsetView>>,
    /// Its builds, by id; `None` when not loaded or in a standalone database.
    pub builds: Option<Vec<BuildRow>>,
}

fn group<T, K: std::hash::Hash + Eq>(
    items: impl IntoIterator<Item = (K, T)>,
) -> HashMap<K, Vec<T>> {
    let mut map: HashMap<K, Vec<T>> = HashMap::new();
    for (k, v) in items {
        map.entry(k).or_default().push(v);
    }
    map
}

impl Store {
    /// Loads `relations` for all of `rows` at once, keeping their order.
    pub fn buildset_graph<'a>(
        &'a self,
        rows: Vec<BuildsetRow>,
        relations: &'a Relations,
        op: &'a Operation,
    ) -> BoxFuture<'a, StoreResult<Vec<BuildsetView>>> {
        Box::pin(async move { self.loader(op).await.buildset_graph(rows, relations).await })
    }

    /// One buildset with what `relations` asks. Its stamps (and their patches) come
    /// in the same statement as its row: a buildset with its stamps is one
    /// statement instead of two.
    pub async fn buildset_view(
        &self,
        bsid: i32,
        relations: &Relations,
        op: &Operation,
    ) -> StoreResult<Option<BuildsetView>> {
        let loader = self.loader(op).await;
        let found = if relations.stamps {
            read::buildset_with_stamps(&loader.db, bsid, relations.patches)
                .await?
                .map(|(row, stamps)| (row, Some(stamps)))
        } else {
            read::get_buildset(&loader.db, bsid)
                .await?
                .map(|row| (row, None))
        };
        let Some((row, stamps)) = found else {
            return Ok(None);
        };
        // The rest as for any set of buildsets (no statement for what is not asked).
        let rest = Relations {
            stamps: false,
            patches: false,
            ..relations.clone()
        };
        let mut view = loader.buildset_graph(vec![row], &rest).await?.pop();
        if let Some(view) = view.as_mut() {
            view.stamps = stamps;
        }
        Ok(view)
    }

    /// Build requests with their builders and buildsets, as `relations` asks.
    pub async fn request_graph(
        &self,
        rows: Vec<BuildRequestRow>,
        relations: &Relations,
        op: &Operation,
    ) -> StoreResult<Vec<RequestView>> {
        self.loader(op)
            .await
            .requests_with(rows, relations, None)
            .await
    }

    /// Sourcestamps, with their patches when asked (one query for all of them).
    pub async fn stamp_graph(
        &self,
        rows: Vec<SourceStampRow>,
        with_patches: bool,
        op: &Operation,
    ) -> StoreResult<Vec<StampView>> {
        self.loader(op).await.stamp_graph(rows, with_patches).await
    }

    /// The loader over the pool, for `op`.
    async fn loader<'a>(
        &'a self,
        op: &'a Operation,
    ) -> Loader<super::tag::Tagged<'a, sea_orm::DatabaseConnection>> {
        Loader {
            db: self.counted(op).await,
            mode: self.mode,
        }
    }
}

/// The page loader over one connection: the pool, or a write's own transaction (so a
/// mutation's answer is what it wrote, read before its COMMIT).
pub(crate) struct Loader<C> {
    pub db: C,
    pub mode: SchemaMode,
}

impl<C: ConnectionTrait + Charge + Sync> Loader<C> {
    /// Loads `relations` for all of `rows` at once, keeping their order.
    pub fn buildset_graph<'a>(
        &'a self,
        rows: Vec<BuildsetRow>,
        relations: &'a Relations,
    ) -> BoxFuture<'a, StoreResult<Vec<BuildsetView>>> {
        Box::pin(async move {
            let ids: Vec<i32> = rows.iter().map(|r| r.bsid).collect();
            let db = &self.db;
            let stamps = async {
                if !relations.stamps || ids.is_empty() {
                    return Ok(None);
                }
                if let Some(views) =
                    read::stamp_views_of_few_buildsets(db, &ids, relations.patches).await?
                {
                    return Ok(Some(group(views)));
                }
                let links = read::sourcestamps_of_buildsets(db, &ids).await?;
                let (owners, stamps): (Vec<i32>, Vec<SourceStampRow>) = links.into_iter().unzip();
                let stamps = self.stamp_graph(stamps, relations.patches).await?;
                Ok::<_, super::StoreError>(Some(group(owners.into_iter().zip(stamps))))
            };
            let props = async {
                if !relations.props || ids.is_empty() {
                    return Ok(None);
                }
                Ok(Some(group(read::properties_of_buildsets(db, &ids).await?)))
            };
            let (mut stamps, mut props, mut requests) =
                futures_util::future::try_join3(stamps, props, self.requests_of(&rows, relations))
                    .await?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let id = row.bsid;
                    BuildsetView {
                        row,
                        stamps: stamps.as_mut().map(|m| m.remove(&id).unwrap_or_default()),
                        props: props.as_mut().map(|m| m.remove(&id).unwrap_or_default()),
                        requests: requests.as_mut().map(|m| m.remove(&id).unwrap_or_default()),
                    }
                })
                .collect())
        })
    }

    /// The build requests of `parents`, with what `relations` asks of them. The
    /// parents a request points back to are `parents` themselves: no query for them.
    async fn requests_of(
        &self,
        parents: &[BuildsetRow],
        relations: &Relations,
    ) -> StoreResult<Option<HashMap<i32, Vec<RequestView>>>> {
        if !relations.requests || parents.is_empty() {
            return Ok(None);
        }
        let ids: Vec<i32> = parents.iter().map(|r| r.bsid).collect();
        let rows = read::buildrequests_of_buildsets(&self.db, &ids).await?;
        let known: HashMap<i32, &BuildsetRow> = parents.iter().map(|p| (p.bsid, p)).collect();
        let views = self.requests_with(rows, relations, Some(&known)).await?;
        Ok(Some(group(views.into_iter().map(|r| (r.row.bsid, r)))))
    }

    async fn requests_with(
        &self,
        rows: Vec<BuildRequestRow>,
        relations: &Relations,
        known: Option<&HashMap<i32, &BuildsetRow>>,
    ) -> StoreResult<Vec<RequestView>> {
        let builders = async {
            if !relations.builders || rows.is_empty() {
                return Ok(None);
            }
            let ids = distinct(rows.iter().map(|r| r.builderid).collect());
            let builders = read::builders_by_ids(&self.db, &ids).await?;
            Ok::<_, super::StoreError>(Some(
                builders
                    .into_iter()
                    .map(|b| (b.builderid, Arc::new(b)))
                    .collect::<HashMap<_, _>>(),
            ))
        };
        let parents = async {
            let Some(sub) = &relations.request_buildset else {
                return Ok(None);
            };
            let ids = distinct(rows.iter().map(|r| r.bsid).collect());
            let parents = match known.filter(|k| ids.iter().all(|id| k.contains_key(id))) {
                Some(k) => ids
                    .iter()
                    .filter_map(|id| k.get(id).map(|r| (*r).clone()))
                    .collect(),
                None => read::buildsets_by_ids(&self.db, &ids).await?,
            };
            let loaded = self.buildset_graph(parents, sub).await?;
            Ok(Some(
                loaded
                    .into_iter()
                    .map(|b| (b.row.bsid, Arc::new(b)))
                    .collect::<HashMap<_, _>>(),
            ))
        };
        let builds = async {
            if !relations.builds || rows.is_empty() || self.mode != SchemaMode::Attached {
                return Ok(None);
            }
            let ids: Vec<i32> = rows.iter().map(|r| r.buildrequestid).collect();
            Ok::<_, super::StoreError>(Some(group(
                read::builds_of_requests(&self.db, &ids)
                    .await?
                    .into_iter()
                    .map(|b| (b.buildrequestid, b)),
            )))
        };
        let (builders, parents, mut builds) =
            futures_util::future::try_join3(builders, parents, builds).await?;
        Ok(rows
            .into_iter()
            .map(|row| RequestView {
                builds: builds
                    .as_mut()
                    .map(|m| m.remove(&row.buildrequestid).unwrap_or_default()),
                builder: builders
                    .as_ref()
                    .and_then(|m| m.get(&row.builderid).cloned()),
                buildset: parents.as_ref().and_then(|m| m.get(&row.bsid).cloned()),
                row,
            })
            .collect())
    }

    async fn stamp_graph(
        &self,
        rows: Vec<SourceStampRow>,
        with_patches: bool,
    ) -> StoreResult<Vec<StampView>> {
        if !with_patches {
            return Ok(rows
                .into_iter()
                .map(|row| StampView { row, patch: None })
                .collect());
        }
        let ids = distinct(rows.iter().filter_map(|r| r.patchid).collect());
        let patches: HashMap<i32, PatchRow> = read::patches_by_ids(&self.db, &ids)
            .await?
            .into_iter()
            .map(|p| (p.patchid, p))
            .collect();
        Ok(rows
            .into_iter()
            .map(|row| StampView {
                patch: Some(row.patchid.and_then(|id| patches.get(&id).cloned())),
                row,
            })
            .collect())
    }
}
