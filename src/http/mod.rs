//! The HTTP side: one state for every route, and the one router factory the binary
//! and every test use.

mod assets;
pub mod board;
pub mod body;
mod graphql;
mod ops;
pub mod reply;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::config::{Config, Origins};
use crate::door::Door;
use crate::graphql::{build_schema, AppData};
use crate::live::{FeedSettings, Hub};
use crate::store::Store;

pub use graphql::Caller;

/// What every route shares: the door, the store, the live feed, the WebSocket side
/// and the shutdown signal, which this state owns (the feed runs while it lives).
#[derive(Clone)]
pub struct AppState {
    pub(crate) door: Door,
    pub(crate) store: Store,
    pub(crate) hub: Hub,
    pub(crate) origins: Origins,
    pub(crate) max_body: usize,
    pub(crate) client_timeout: Duration,
    pub(crate) sockets: crate::ws::Sockets,
    shutdown: Arc<watch::Sender<bool>>,
    allowed_hosts: Arc<crate::hosts::AllowedHosts>,
}

impl AppState {
    /// Checks the configuration that the router depends on (a malformed
    /// `--cors-origin` or token file fails here) and starts the live feed.
    pub fn new(config: &Config, store: Store) -> Result<AppState, String> {
        let origins = config.origins()?;
        let tokens = config.tokens()?;
        // The recorder is installed before the first request counts.
        crate::metrics::handle();
        let (shutdown, signal) = watch::channel(false);
        let limits = config.limits.clone();
        let hub = Hub::start(
            store.clone(),
            FeedSettings {
                interval: Duration::from_millis(config.poll_interval_ms),
                window: Duration::from_secs(config.event_window),
                buffer: usize::try_from(config.subscription_buffer).unwrap_or(usize::MAX),
                max_per_connection: config.max_subscriptions_per_connection,
                max_total: usize::try_from(config.max_subscriptions).unwrap_or(usize::MAX),
                max_weight: config.max_subscription_bytes,
            },
            signal.clone(),
        );
        let schema = build_schema(AppData {
            hub: hub.clone(),
            store: store.clone(),
            limits: limits.clone(),
            answers: Default::default(),
        });
        let documents =
            crate::door::Documents::new(config.persisted_queries_bytes, &config.trusted_documents)?
                .trusting_also(board::documents());
        if let Some(n) = documents.trusted_count() {
            tracing::info!(
                documents = n,
                "trusted documents: only the {n} listed operations run (and introspection), the board's among them"
            );
        }
        let door = Door::new(
            schema,
            documents,
            tokens,
            limits,
            (config.request_timeout > 0).then(|| Duration::from_secs(config.request_timeout)),
            store.clone(),
        );
        Ok(AppState {
            door,
            store,
            hub,
            origins,
            max_body: config.limits.max_body_bytes,
            client_timeout: Duration::from_secs(config.client_timeout),
            sockets: crate::ws::Sockets::new(config, signal),
            shutdown: Arc::new(shutdown),
            allowed_hosts: Arc::new(crate::hosts::AllowedHosts::new(
                &config.allowed_hosts,
                crate::hosts::own_name(),
            )),
        })
    }

    /// Ends everything live: subscriptions end, sockets close with 1001 once what
    /// they buffered is out.
    pub fn shut_down(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until every WebSocket is closed, for at most `deadline`.
    pub async fn sockets_closed(&self, deadline: Duration) -> bool {
        self.sockets.all_closed(deadline).await
    }
}

/// The routes: `/` (the board), `/board/*`, `/graphql` (POST, GET with `?query=`, or the playground),
/// `/graphql/ws`, `/graphql/assets/*`, `/favicon.ico`, `/healthz`, `/readyz`,
/// `/metrics`.
pub fn router(state: AppState) -> Router {
    let cors = cors(&state.origins);
    let hosts = state.allowed_hosts.clone();
    let deadline = (state.client_timeout, state.max_body);
    let client_timeout = state.client_timeout;
    let max_body = state.max_body;
    Router::new()
        .route(
            "/graphql",
            get(graphql::get)
                .post(graphql::post)
                .fallback(ops::method_not_allowed),
        )
        .route(
            "/graphql/ws",
            get(crate::ws::upgrade).fallback(ops::method_not_allowed),
        )
        .route("/graphql/assets/{file}", get(assets::asset))
        .route("/", get(board::page).fallback(ops::method_not_allowed))
        .route("/board/assets/{file}", get(board::asset))
        .route("/board/persisted-query-manifest.json", get(board::manifest))
        .route("/favicon.ico", get(assets::favicon))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            deadline,
            body::body_deadline,
        ))
        // A compressed body is decoded as it is read, so the body bound above counts
        // decoded bytes (a gzip bomb stops at --max-body-bytes with 413).
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(axum::middleware::from_fn(body::known_coding))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            client_timeout,
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            hosts,
            crate::hosts::check_host,
        ))
        // A 503 (a full socket cap, /readyz with the database down) is an expected
        // answer, logged where it is decided; tower-http would log it as an ERROR.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            reply::MakeId,
        ))
        .layer(axum::middleware::from_fn(reply::request_id))
}

fn cors(origins: &Origins) -> CorsLayer {
    match origins {
        Origins::List(list) if list.is_empty() => CorsLayer::new(),
        Origins::Any => CorsLayer::new().allow_origin(AllowOrigin::any()),
        Origins::List(list) => CorsLayer::new().allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
    .allow_methods([Method::GET, Method::POST])
    .allow_headers([
        header::CONTENT_TYPE,
        header::AUTHORIZATION,
        header::HeaderName::from_static(reply::REQUEST_ID),
        header::HeaderName::from_static(crate::door::READ_FROM),
        header::HeaderName::from_static(crate::door::READ_AFTER),
    ])
    .expose_headers([
        header::HeaderName::from_static(reply::REQUEST_ID),
        header::HeaderName::from_static(crate::door::WRITE_POSITION),
    ])
}

/// A request's log span: its method and path, never its query string (where a client
/// may have put a token by mistake) nor its headers.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
}
