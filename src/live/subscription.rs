//! One subscription's events, as a stream; dropping it unsubscribes.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;

use super::{Connection, Hub};
use crate::store::BuildsetView;

/// The events of one subscription; dropping it unsubscribes.
pub struct Subscription {
    pub(super) hub: Hub,
    pub(super) id: u64,
    pub(super) rx: mpsc::Receiver<Arc<BuildsetView>>,
    pub(super) connection: Option<Arc<Connection>>,
    pub(super) done: bool,
}

impl Subscription {
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.hub.unsubscribe(self.id);
        if let Some(c) = &self.connection {
            c.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Stream for Subscription {
    type Item = Arc<BuildsetView>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.rx.poll_recv(cx);
        if let Poll::Ready(None) = next {
            self.finish();
        }
        next
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.finish();
    }
}
