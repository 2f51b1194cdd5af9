//! Subscriptions over WebSocket: graphql-transport-ws, owned here rather than
//! patched around a library's driver.
//!
//! async-graphql-axum's `GraphQLWebSocket` runs the protocol itself: it answers a
//! validation error with `next` + `complete` where the protocol says `error`, lets a
//! second `subscribe` with an id in use replace the first (the protocol closes with
//! 4409), and closes with its own codes (1002, 1011) where the protocol has 4400,
//! 4401 and 4403. Its `GraphQLProtocol` extractor keeps the protocol it picked private
//! and takes the legacy `graphql-ws` when a client offers it first. So the protocol is
//! ours (`protocol`, `session`), on top of the door's streaming entry.

pub mod protocol;
mod session;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use crate::config::Config;

pub use upgrade::upgrade;

/// The WebSocket side of the server: the cap on open sockets, keep-alive, and the
/// shutdown they close on.
#[derive(Clone)]
pub struct Sockets {
    slots: Arc<Semaphore>,
    max: usize,
    keepalive: Option<Duration>,
    /// Time a socket has to complete `connection_init` (`--client-timeout`): an
    /// idle socket must not hold one of the `--max-websockets` slots forever.
    init_timeout: Duration,
    /// The largest message taken (`--max-body-bytes`).
    max_message: usize,
    shutdown: watch::Receiver<bool>,
}

impl Sockets {
    pub fn new(config: &Config, shutdown: watch::Receiver<bool>) -> Sockets {
        Sockets {
            slots: Arc::new(Semaphore::new(config.max_websockets)),
            max: config.max_websockets,
            keepalive: (config.ws_keepalive > 0).then(|| Duration::from_secs(config.ws_keepalive)),
            init_timeout: Duration::from_secs(config.client_timeout),
            max_message: config.limits.max_body_bytes,
            shutdown,
        }
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Waits until every WebSocket is closed, for at most `deadline`.
    pub async fn all_closed(&self, deadline: Duration) -> bool {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        tokio::time::timeout(deadline, self.slots.acquire_many(all))
            .await
            .is_ok()
    }
}
