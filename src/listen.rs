//! Serving: open the store, bind, the accept loop (hyper's connection loop, with
//! what it lacks: deadlines, a connection cap, idle and stalled peers closed, a
//! bounded drain at shutdown), and the signals that end it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{router, AppState};
use crate::store::Store;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects and makes the schema usable (migrated, or checked when attached).
pub async fn open_store(config: &Config) -> Result<Store, BoxError> {
    let store = Store::open_with_timeouts(&config.database_url, config.timeouts())
        .await?
        .with_replicas(
            &config.read_database_urls,
            Duration::from_millis(config.replica_max_lag_ms),
            config.timeouts(),
        )
        .await?;
    if let Some(replicas) = store.replicas() {
        // Twice: lag is told from the primary's positions over time.
        store.check_replicas().await;
        tokio::time::sleep(replicas.interval().min(Duration::from_millis(200))).await;
        store.check_replicas().await;
        let watched = store.clone();
        tokio::spawn(async move { watched.watch_replicas().await });
    }
    Ok(store)
}

/// Refuses configurations that would expose open writes beyond this machine, or
/// that name origins a browser never sends.
pub fn check_config(config: &Config) -> Result<(), String> {
    config.origins()?;
    let tokens = config.tokens()?;
    if !config.listen.ip().is_loopback()
        && tokens.write.is_empty()
        && !config.allow_anonymous_writes
    {
        return Err(format!(
            "refusing to listen on {} without a write token: set --write-token (WRITE_TOKEN) \
             or pass --allow-anonymous-writes",
            config.listen
        ));
    }
    Ok(())
}

/// Serves until SIGINT/SIGTERM, then lets in-flight requests finish (for at most
/// `--shutdown-timeout`).
pub async fn serve(config: Config) -> Result<(), BoxError> {
    check_config(&config)?;
    let store = open_store(&config).await?;
    let mode = store.mode();
    let state = AppState::new(&config, store)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} ({e}){}",
                config.listen,
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    ": another process holds it; stop it, or choose another address with --listen"
                } else {
                    ""
                }
            )
        })?;
    let addr = listener.local_addr()?;
    crate::metrics::build_info(state.store.backend_name());
    tracing::info!(
        address = %addr,
        ?mode,
        "listening: the playground is at http://{addr}/graphql and the board at http://{addr}/ ({mode:?} database)"
    );
    accept_loop(listener, router(state.clone()), &config, &state).await;
    let deadline = Duration::from_secs(config.shutdown_timeout);
    if !state.sockets_closed(deadline).await {
        tracing::warn!("WebSockets still open after --shutdown-timeout: exiting anyway");
    }
    tracing::info!("shut down");
    Ok(())
}

/// Streams one HTTP/2 connection may have open at once.
const H2_MAX_STREAMS: u32 = 32;

type Builder = hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>;

/// hyper's connection loop, as `axum::serve` runs it, plus what that lacks: a
/// deadline for the request headers (a client sending them a byte a second is cut
/// off), a cap on open connections, and a bound on the drain at shutdown.
pub async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    config: &Config,
    state: &AppState,
) {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let builder = http_builder(config);
    let timeout = Duration::from_secs(config.client_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max = config.max_connections,
                "too many connections: closing a new one"
            );
            drop(stream);
            continue;
        };
        let conn = Connection {
            builder: builder.clone(),
            router: router.clone(),
            shutdown: shutdown_rx.clone(),
            timeout,
        };
        tokio::spawn(async move {
            conn.serve(stream).await;
            drop(slot);
        });
    }
    drop(listener);
    // Subscriptions end and sockets close (1001) once their buffered events are out.
    let _ = shutdown_tx.send(true);
    state.shut_down();
    drain(&slots, config).await;
}

/// hyper's HTTP/1 and HTTP/2 settings.
fn http_builder(config: &Config) -> Builder {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let timeout = Duration::from_secs(config.client_timeout);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    // An HTTP/2 peer that stops answering pings is closed like a silent HTTP/1 one.
    // Its streams are bounded, and with them the bodies it can make us buffer (each
    // at most --max-body-bytes): 190 unfinished 1 MB bodies on one connection held
    // 214 MB.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(timeout))
        .keep_alive_timeout(timeout)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(256 << 10)
        .initial_connection_window_size(1 << 20)
        .max_send_buf_size(256 << 10)
        .max_header_list_size(64 << 10);
    builder
}

/// One accepted connection, served until it ends.
struct Connection {
    builder: Builder,
    router: Router,
    shutdown: watch::Receiver<bool>,
    timeout: Duration,
}

impl Connection {
    async fn serve(mut self, stream: tokio::net::TcpStream) {
        use hyper_util::rt::TokioIo;
        // hyper's header deadline starts with the first byte: a connection that
        // never sends one would hold its slot (of --max-connections) forever.
        let mut first = [0u8; 1];
        if !matches!(
            tokio::time::timeout(self.timeout, stream.peek(&mut first)).await,
            Ok(Ok(n)) if n > 0
        ) {
            return;
        }
        let activity = crate::conn::Activity::new();
        let service = {
            let (router, activity) = (self.router.clone(), activity.clone());
            hyper::service::service_fn(
                move |request: axum::http::Request<hyper::body::Incoming>| {
                    let in_flight = activity.begin();
                    let answer = tower::ServiceExt::oneshot(router.clone(), request);
                    async move {
                        let response = answer.await;
                        drop(in_flight);
                        response
                    }
                },
            )
        };
        let io = TokioIo::new(crate::conn::StallGuard::new(stream, self.timeout));
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                // At shutdown, and when nothing has been in flight for the client
                // timeout: finish what is in flight, then close.
                _ = self.shutdown.wait_for(|down| *down), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = activity.idle_for(self.timeout), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Waits for the connections in flight to finish, for at most --shutdown-timeout.
async fn drain(slots: &tokio::sync::Semaphore, config: &Config) {
    let deadline = Duration::from_secs(config.shutdown_timeout);
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(deadline, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = config.shutdown_timeout,
            "requests still in flight after --shutdown-timeout: exiting anyway"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("signal received: finishing in-flight requests");
}
