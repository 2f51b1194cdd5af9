//! Live updates: one poller per server follows the store's change feed and hands
//! each change to the subscriptions that want it. A batch of changes is loaded
//! once for all subscribers: one statement per distinct `where` filter, then the
//! buildsets with one statement per relation level (the store's page loader).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::store::feed::{Change, Tracker};
use crate::store::query::Filter;
use crate::store::{BuildsetView, Relations, Store};

mod connection;
mod subscription;

pub use connection::Connection;
pub use subscription::Subscription;

/// How the poller runs.
#[derive(Clone, Copy, Debug)]
pub struct FeedSettings {
    /// Time between two polls when nothing wakes the poller earlier.
    pub interval: Duration,
    /// How long an id skipped over (an uncommitted transaction) and a completion
    /// are looked for again.
    pub window: Duration,
    /// Events a subscription may have waiting; one more and its connection is
    /// dropped.
    pub buffer: usize,
    /// Subscriptions one connection may hold.
    pub max_per_connection: usize,
    /// Subscriptions the server holds in all: each keeps its document and filter
    /// (up to a few hundred KB with a large `where`).
    pub max_total: usize,
    /// Bytes the open subscriptions' documents may hold in all (each weighs its
    /// parsed document, as the parse cache weighs it).
    pub max_weight: u64,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            interval: Duration::from_secs(1),
            window: Duration::from_secs(60),
            buffer: 256,
            max_per_connection: 100,
            max_total: 1_000,
            max_weight: 64 << 20,
        }
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}

/// Which changes a subscription follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Added,
    /// Completions, of one buildset or of all.
    Completed(Option<i32>),
}

impl Kind {
    fn wants(self, change: Change) -> bool {
        match (self, change) {
            (Kind::Added, Change::Added(_)) => true,
            (Kind::Completed(None), Change::Completed(_)) => true,
            (Kind::Completed(Some(bsid)), Change::Completed(id)) => bsid == id,
            _ => false,
        }
    }
}

/// What a subscriber follows and what its events must load.
struct Want {
    kind: Kind,
    filter: Option<Filter>,
    relations: Relations,
}

struct Subscriber {
    /// Shared with each delivery's snapshot, which takes no lock across queries.
    want: Arc<Want>,
    tx: mpsc::Sender<Arc<BuildsetView>>,
    connection: Option<Arc<Connection>>,
    /// Its share of `max_weight`.
    weight: u64,
}

struct Inner {
    store: Store,
    settings: FeedSettings,
    /// Where the feed stands; reset while no one subscribes, so that an idle server
    /// sends the database nothing, and set again before a first subscription starts.
    tracker: tokio::sync::Mutex<Tracker>,
    subscribers: Mutex<HashMap<u64, Subscriber>>,
    /// The open subscriptions' weights, summed.
    weight: AtomicU64,
    next: AtomicU64,
    closed: AtomicBool,
}

/// Cheap to clone; one per server.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

/// Why a subscription was refused.
#[derive(Debug)]
pub enum Refused {
    TooMany(usize),
    /// The server holds `--max-subscriptions` already.
    Full(usize),
    /// The open subscriptions' documents weigh `--max-subscription-bytes` already.
    Heavy(u64),
    ShuttingDown,
}

impl Hub {
    /// Starts the poller (and, on PostgreSQL, the listener); both stop once
    /// `shutdown` turns true, after which every subscription ends.
    pub fn start(store: Store, settings: FeedSettings, shutdown: watch::Receiver<bool>) -> Hub {
        let hub = Hub(Arc::new(Inner {
            store,
            settings,
            tracker: tokio::sync::Mutex::new(Tracker::new(settings.window)),
            subscribers: Mutex::new(HashMap::new()),
            weight: AtomicU64::new(0),
            next: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        }));
        let listener = hub.0.store.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = listener.listen() => {}
                () = stopped(&mut stop) => {}
            }
        });
        tokio::spawn(hub.clone().run(shutdown));
        hub
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let signal = self.0.store.signal().clone();
        let mut tick = tokio::time::interval(self.0.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures: u32 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = signal.woken() => {
                    // Writes that come in a burst are taken in one poll.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                () = stopped(&mut shutdown) => break,
            }
            let hints = signal.take_hints();
            let mut tracker = self.0.tracker.lock().await;
            if self.is_idle() {
                *tracker = Tracker::new(self.0.settings.window);
                continue;
            }
            let polled = self.0.store.poll_changes(&mut tracker, &hints).await;
            drop(tracker);
            let changes = match polled {
                Ok(c) => {
                    failures = 0;
                    c
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "polling for buildset changes failed; retrying");
                    }
                    continue;
                }
            };
            if !changes.is_empty() {
                self.deliver(&changes).await;
            }
        }
        self.close();
    }

    /// Ends every subscription: each delivers what it has buffered, then completes.
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Relaxed);
        if let Ok(mut subs) = self.0.subscribers.lock() {
            subs.clear();
        }
        self.0.weight.store(0, Ordering::Release);
    }

    /// Subscriptions open now.
    pub fn subscriptions(&self) -> usize {
        self.0.subscribers.lock().map_or(0, |s| s.len())
    }

    fn is_idle(&self) -> bool {
        self.0.subscribers.lock().map_or(true, |s| s.is_empty())
    }

    /// A new subscription; its stream ends when the hub closes. It sees every change
    /// committed after this returns.
    pub async fn subscribe(
        &self,
        kind: Kind,
        filter: Option<Filter>,
        relations: Relations,
        connection: Option<Arc<Connection>>,
        weight: u64,
    ) -> Result<Subscription, Refused> {
        self.admit(connection.as_ref(), weight)?;
        let (tx, rx) = mpsc::channel(self.0.settings.buffer.max(1));
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut subs) = self.0.subscribers.lock() {
            subs.insert(
                id,
                Subscriber {
                    want: Arc::new(Want {
                        kind,
                        filter,
                        relations,
                    }),
                    tx,
                    connection: connection.clone(),
                    weight,
                },
            );
        }
        let subscription = Subscription {
            hub: self.clone(),
            id,
            rx,
            connection,
            done: false,
        };
        // The first subscriber of an idle hub: take the starting point now, or the
        // changes before the next tick would be taken for the past.
        let mut tracker = self.0.tracker.lock().await;
        if !tracker.started() {
            if let Err(e) = self.0.store.poll_changes(&mut tracker, &[]).await {
                tracing::warn!(error = %e, "starting the change feed failed; the next poll retries");
            }
        }
        Ok(subscription)
    }

    /// Takes a place for a new subscription of `weight` (and on its connection), or
    /// says which bound refuses it.
    fn admit(&self, connection: Option<&Arc<Connection>>, weight: u64) -> Result<(), Refused> {
        if self.0.closed.load(Ordering::Relaxed) {
            return Err(Refused::ShuttingDown);
        }
        let max_total = self.0.settings.max_total;
        if self.subscriptions() >= max_total {
            return Err(Refused::Full(max_total));
        }
        let max_weight = self.0.settings.max_weight;
        if self
            .0
            .weight
            .fetch_add(weight, Ordering::AcqRel)
            .saturating_add(weight)
            > max_weight
        {
            self.0.weight.fetch_sub(weight, Ordering::AcqRel);
            return Err(Refused::Heavy(max_weight));
        }
        if let Some(c) = connection {
            let max = self.0.settings.max_per_connection;
            if c.open.fetch_add(1, Ordering::Relaxed) >= max {
                c.open.fetch_sub(1, Ordering::Relaxed);
                self.0.weight.fetch_sub(weight, Ordering::AcqRel);
                return Err(Refused::TooMany(max));
            }
            c.subscribed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn unsubscribe(&self, id: u64) {
        if let Ok(mut subs) = self.0.subscribers.lock() {
            if let Some(sub) = subs.remove(&id) {
                self.0.weight.fetch_sub(sub.weight, Ordering::AcqRel);
            }
        }
    }

    /// Loads the buildsets of `changes` that someone waits for, once, and hands each
    /// change to every subscription that wants it, in order.
    async fn deliver(&self, changes: &[Change]) {
        let wanted = self.wanted(changes);
        if wanted.is_empty() {
            return;
        }
        let mut ids: Vec<i32> = changes
            .iter()
            .filter(|c| wanted.iter().any(|(_, w)| w.kind.wants(**c)))
            .map(|c| c.bsid())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // Bounded per event when each subscriber's answer is made. With replicas, the
        // loads wait for one that has replayed what the poll saw on the primary (or
        // go to the primary): no event with its nested rows missing.
        let work = crate::store::tag::Operation::unbounded();
        if let Some(at) = self.0.store.write_position().await {
            work.read_from(crate::store::replica::ReadFrom::Awaiting(at));
        }
        let (slots, matched) = self.match_filters(&ids, &wanted, &work).await;
        let Some(views) = self.load(&ids, &wanted, &work).await else {
            return;
        };
        let Ok(mut subs) = self.0.subscribers.lock() else {
            return;
        };
        let mut slow = Vec::new();
        for ((id, want), slot) in wanted.iter().zip(&slots) {
            let Some(sub) = subs.get(id) else { continue };
            let matches = |bsid: i32| slot.is_none_or(|i| matched[i].contains(&bsid));
            let theirs = changes
                .iter()
                .filter(|c| want.kind.wants(**c) && matches(c.bsid()))
                // A buildset deleted in between has nothing left to show.
                .filter_map(|c| views.get(&c.bsid()));
            if !sub.hand(theirs) {
                slow.push(*id);
            }
        }
        for id in slow {
            if let Some(sub) = subs.remove(&id) {
                self.drop_slow(sub);
            }
        }
    }

    /// A snapshot of who wants any of `changes`, so that no lock is held across a
    /// query.
    fn wanted(&self, changes: &[Change]) -> Vec<(u64, Arc<Want>)> {
        match self.0.subscribers.lock() {
            Ok(subs) => subs
                .iter()
                .filter(|(_, s)| changes.iter().any(|c| s.want.kind.wants(*c)))
                .map(|(id, s)| (*id, s.want.clone()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The distinct filters, matched together: statements grow with the values
    /// they compare, not with the number of subscribers. Each subscriber gets the
    /// index of its filter's matches (none without a filter).
    async fn match_filters(
        &self,
        ids: &[i32],
        wanted: &[(u64, Arc<Want>)],
        work: &crate::store::tag::Operation,
    ) -> (Vec<Option<usize>>, Vec<HashSet<i32>>) {
        let mut distinct: Vec<&Filter> = Vec::new();
        let slots: Vec<Option<usize>> = wanted
            .iter()
            .map(|(_, w)| {
                let f = w.filter.as_ref()?;
                Some(distinct.iter().position(|g| *g == f).unwrap_or_else(|| {
                    distinct.push(f);
                    distinct.len() - 1
                }))
            })
            .collect();
        let matched = match self.0.store.matching(ids, &distinct, work).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "filtering buildset events failed");
                vec![HashSet::new(); distinct.len()]
            }
        };
        (slots, matched)
    }

    /// The buildsets `ids` with every relation someone asked for, loaded once.
    async fn load(
        &self,
        ids: &[i32],
        wanted: &[(u64, Arc<Want>)],
        work: &crate::store::tag::Operation,
    ) -> Option<HashMap<i32, Arc<BuildsetView>>> {
        let store = &self.0.store;
        let relations = wanted.iter().fold(Relations::default(), |r, (_, w)| {
            r.merge(w.relations.clone())
        });
        let views = match store.buildsets_by_ids(ids, work).await {
            Ok(rows) if rows.len() < ids.len() && work.read_a_replica() => {
                // A replica without a row the primary's poll saw (it was deleted
                // since, or the replica is behind what it said): the primary tells.
                let primary = crate::store::tag::Operation::unbounded();
                primary.read_from(crate::store::replica::ReadFrom::Primary);
                match store.buildsets_by_ids(ids, &primary).await {
                    Ok(rows) => store.buildset_graph(rows, &relations, &primary).await,
                    Err(e) => Err(e),
                }
            }
            Ok(rows) => store.buildset_graph(rows, &relations, work).await,
            Err(e) => Err(e),
        };
        match views {
            Ok(v) => Some(v.into_iter().map(|v| (v.row.bsid, Arc::new(v))).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "loading buildset events failed; they are lost");
                None
            }
        }
    }

    /// Unsubscribes a subscriber that does not read its events, and tells its
    /// connection (which closes).
    fn drop_slow(&self, sub: Subscriber) {
        self.0.weight.fetch_sub(sub.weight, Ordering::AcqRel);
        tracing::info!(
            connection = sub.connection.as_ref().map(|c| c.id),
            buffer = self.0.settings.buffer,
            "dropping a subscriber that does not read its events"
        );
        if let Some(c) = &sub.connection {
            c.too_slow.store(true, Ordering::Relaxed);
            c.kill.notify_one();
        }
    }
}

impl Subscriber {
    /// Hands `views` over in order; false when its buffer is full (too slow).
    fn hand<'a>(&self, views: impl Iterator<Item = &'a Arc<BuildsetView>>) -> bool {
        for view in views {
            match self.tx.try_send(view.clone()) {
                Ok(()) => {
                    if let Some(c) = &self.connection {
                        c.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) => return false,
                Err(mpsc::error::TrySendError::Closed(_)) => return true,
            }
        }
        true
    }
}
