//! One WebSocket connection as the feed sees it: its subscriptions, the events
//! delivered to it, and the signal that drops it when it reads too slowly.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// One WebSocket connection, as the feed sees it: its subscriptions, the events
/// delivered to it, and the signal that drops it when it reads too slowly.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub(super) open: AtomicUsize,
    pub(super) subscribed: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) too_slow: AtomicBool,
    pub(super) kill: Notify,
}

impl Connection {
    pub fn new() -> Arc<Connection> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Arc::new(Connection {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            open: AtomicUsize::new(0),
            subscribed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            too_slow: AtomicBool::new(false),
            kill: Notify::new(),
        })
    }

    /// Subscriptions open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Subscriptions opened in all.
    pub fn subscribed(&self) -> u64 {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// Events delivered to its subscriptions.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Resolves when a subscription of this connection overflowed its buffer.
    pub async fn dropped_for_slowness(&self) {
        self.kill.notified().await;
    }

    pub fn is_too_slow(&self) -> bool {
        self.too_slow.load(Ordering::Relaxed)
    }
}
