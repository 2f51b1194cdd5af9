//! HTTP: connect and prepare the database, build the router, serve until a signal.
//! Every route that runs an operation hands it to the one [`Door`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::http::{
    WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage, ALL_WEBSOCKET_PROTOCOLS,
};
use async_graphql::{Data, Value};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::config::{Config, Origins};
use crate::door::{wide, Answer, Caller, Door, Refusal, SocketExecutor, Transport, WIDE_INTEGER};
use crate::error::Code;
use crate::graphql::{build_schema, AppData};
use crate::live::{Connection, FeedSettings, Hub};
use crate::store::Store;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects and makes the schema usable (migrated, or checked when attached).
pub async fn open_store(config: &Config) -> Result<Store, BoxError> {
    Ok(Store::open_with_timeouts(&config.database_url, config.timeouts()).await?)
}

/// What every route shares.
#[derive(Clone)]
struct AppState {
    door: Door,
    store: Store,
    hub: Hub,
    max_websockets: usize,
    origins: Origins,
    max_body: usize,
    sockets: Sockets,
}

/// The WebSocket side: the cap on open sockets, keep-alive, and the shutdown they
/// close on.
#[derive(Clone)]
struct Sockets {
    slots: Arc<tokio::sync::Semaphore>,
    keepalive: Option<Duration>,
    /// Time a socket has to complete `connection_init` (`--client-timeout`): an
    /// idle socket must not hold one of the `--max-websockets` slots forever.
    init_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    /// Held while the router lives, when no caller drives the shutdown itself, so
    /// that the poller runs as long as the router does.
    _keep: Option<Arc<watch::Sender<bool>>>,
}

/// What [`app_with_shutdown`] gives besides the router: a way to wait for the
/// WebSockets to close.
pub struct Live {
    slots: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl Live {
    /// Waits until every WebSocket is closed, for at most `deadline`.
    pub async fn sockets_closed(&self, deadline: Duration) -> bool {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        tokio::time::timeout(deadline, self.slots.acquire_many(all))
            .await
            .is_ok()
    }
}

/// The router: `/graphql` (POST, GET with `?query=`, or the playground),
/// `/graphql/ws`, `/graphql/assets/*`, `/healthz`, `/readyz`. Fails when the
/// configuration is not usable (a malformed `--cors-origin`).
pub fn app(config: &Config, store: Store) -> Result<Router, String> {
    let (tx, rx) = watch::channel(false);
    let (router, _live) = app_inner(config, store, rx, Some(Arc::new(tx)))?;
    Ok(router)
}

/// The router, and the WebSocket side of it; everything live stops once `shutdown`
/// turns true (subscriptions end, sockets close with 1001).
pub fn app_with_shutdown(
    config: &Config,
    store: Store,
    shutdown: watch::Receiver<bool>,
) -> Result<(Router, Live), String> {
    app_inner(config, store, shutdown, None)
}

fn app_inner(
    config: &Config,
    store: Store,
    shutdown: watch::Receiver<bool>,
    keep: Option<Arc<watch::Sender<bool>>>,
) -> Result<(Router, Live), String> {
    let origins = config.origins()?;
    let tokens = config.tokens()?;
    // The recorder is installed before the first request counts.
    crate::metrics::handle();
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
        shutdown.clone(),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_websockets));
    let hub_handle = hub.clone();
    let schema = build_schema(AppData {
        hub,
        store: store.clone(),
        limits: config.limits(),
        answers: Default::default(),
    });
    let door = Door::new(
        schema,
        tokens.read,
        tokens.write,
        &config.limits(),
        (config.request_timeout > 0).then(|| Duration::from_secs(config.request_timeout)),
        Some(store.clone()),
    );
    let cors = match &origins {
        Origins::List(list) if list.is_empty() => CorsLayer::new(),
        Origins::Any => CorsLayer::new().allow_origin(AllowOrigin::any()),
        Origins::List(list) => CorsLayer::new().allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
    .allow_methods([Method::GET, Method::POST])
    .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]);
    let state = AppState {
        door,
        hub: hub_handle,
        max_websockets: config.max_websockets,
        store,
        origins,
        max_body: config.max_body_bytes,
        sockets: Sockets {
            slots: slots.clone(),
            keepalive: (config.ws_keepalive > 0).then(|| Duration::from_secs(config.ws_keepalive)),
            init_timeout: Duration::from_secs(config.client_timeout),
            shutdown,
            _keep: keep,
        },
    };
    let live = Live {
        slots,
        max: config.max_websockets,
    };
    let router = Router::new()
        .route(
            "/graphql",
            get(graphql_get)
                .post(graphql_post)
                .fallback(method_not_allowed),
        )
        .route("/graphql/ws", get(graphql_ws).fallback(method_not_allowed))
        .route("/graphql/assets/{file}", get(asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            (
                Duration::from_secs(config.client_timeout),
                config.max_body_bytes,
            ),
            crate::body::body_deadline,
        ))
        // A compressed body is decoded as it is read, so the body bound above counts
        // decoded bytes (a gzip bomb stops at --max-body-bytes with 413).
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(axum::middleware::from_fn(crate::body::known_coding))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_secs(config.client_timeout),
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(crate::hosts::AllowedHosts::new(
                &config.allowed_hosts,
                crate::hosts::own_name(),
            )),
            crate::hosts::check_host,
        ))
        // A 503 (a full socket cap, /readyz with the database down) is an expected
        // answer, logged where it is decided; tower-http would log it as an ERROR.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN)),
        );
    Ok((router, live))
}

/// A request's log span: its method and path, never its query string (where a client
/// may have put a token by mistake) nor its headers.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
}

fn reply(answer: Answer) -> Response {
    (answer.status, axum::Json(answer.response)).into_response()
}

pub(crate) fn refuse(status: StatusCode, code: Code, message: impl Into<String>) -> Response {
    reply(Refusal::new(status, code, message).answer())
}

fn caller(headers: &HeaderMap) -> Caller {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    Caller { token }
}

/// The token of an `Authorization` value, `Bearer <token>` (any case of "Bearer").
fn bearer(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Only JSON bodies: a cross-site page can send `text/plain`, form and multipart
/// bodies without a CORS preflight, and so could run mutations on open writes.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.eq_ignore_ascii_case("application/graphql-response+json")
        })
}

/// Marks a request whose raw JSON text holds an integer too wide for 64 bits (which
/// parsing would round): the door refuses it naming `path` within the variables.
fn mark_wide(request: &mut async_graphql::Request, json: &[u8], variables_at: &str) {
    if let Some(path) = wide::in_json(json) {
        let path = path
            .strip_prefix(variables_at)
            .map_or(path.as_str(), |p| p.trim_start_matches('.'))
            .to_owned();
        request
            .extensions
            .insert(WIDE_INTEGER.into(), Value::from(path));
    }
}

async fn graphql_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = caller(&headers);
    if let Err(refusal) = state.door.admit(&caller) {
        return reply(refusal.answer());
    }
    if !is_json(&headers) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BadUserInput,
            "POST /graphql takes a JSON body: send `Content-Type: application/json`",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::BadUserInput,
                format!(
                    "the request body exceeds the limit of {} bytes (--max-body-bytes)",
                    state.max_body
                ),
            )
        }
        Err(e) => return refuse(e.status(), Code::BadUserInput, e.body_text()),
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return refuse(
            StatusCode::BAD_REQUEST,
            Code::BadUserInput,
            "batched requests are not supported: send one operation per request",
        );
    }
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                Code::BadUserInput,
                format!("the body is not a GraphQL request (JSON with a `query` string): {e}"),
            )
        }
    };
    if request.query.trim().is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            Code::BadUserInput,
            "the request has no `query`",
        );
    }
    mark_wide(&mut request, &body, "variables");
    reply(state.door.run(request, caller, Transport::Post).await)
}

/// GET runs queries given as `?query=`; without one it serves the playground.
/// Mutations are never run from a GET (a link must not change data).
async fn graphql_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    if !params.iter().any(|(k, _)| k == "query") {
        return playground();
    }
    let caller = caller(&headers);
    if let Err(refusal) = state.door.admit(&caller) {
        return reply(refusal.answer());
    }
    let mut request = match async_graphql::http::parse_query_string(uri.query().unwrap_or_default())
    {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, Code::BadUserInput, e.to_string()),
    };
    if let Some((_, variables)) = params.iter().find(|(k, _)| k == "variables") {
        mark_wide(&mut request, variables.as_bytes(), "");
    }
    // GraphQL over HTTP names it `operationName`; async-graphql's GET parser reads
    // `operation_name`.
    if let Some((_, name)) = params.iter().find(|(k, _)| k == "operationName") {
        request.operation_name = Some(name.clone()).filter(|n| !n.is_empty());
    }
    reply(state.door.run(request, caller, Transport::Get).await)
}

async fn method_not_allowed(method: Method) -> Response {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::BadUserInput,
        format!("{method} is not served here: POST an operation, or GET the playground"),
    )
}

async fn not_found(uri: Uri) -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        format!(
            "nothing is served at {}: the API is at /graphql",
            uri.path()
        ),
    )
}

// The playground, pinned (GraphiQL 3.8.3, React 18.3.1) and embedded, so that it
// works with no network. `src/playground/SHA256SUMS` records the files.
const INDEX_HTML: &str = include_str!("playground/index.html");
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("playground/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/react-dom.production.min.js"),
    ),
    (
        "playground.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/playground.js"),
    ),
];

/// Nothing of the page may come from another host.
const PLAYGROUND_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

fn playground() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PLAYGROUND_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>, uri: Uri) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => not_found(uri).await,
    }
}

/// Whether a WebSocket upgrade may proceed: browsers apply no CORS to WebSockets, so
/// a page on another origin could otherwise talk to this server with the user's
/// network position. Clients that send no `Origin` (not browsers) are let in.
fn origin_allowed(headers: &HeaderMap, origins: &Origins) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return headers.get(header::ORIGIN).is_none();
    };
    let origin = origin.to_ascii_lowercase();
    let own = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| {
            let host = host.to_ascii_lowercase();
            origin == format!("http://{host}") || origin == format!("https://{host}")
        });
    own || match origins {
        Origins::Any => true,
        Origins::List(list) => list.contains(&origin),
    }
}

/// The GraphQL protocol the client offers in `Sec-WebSocket-Protocol`.
fn ws_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())?
        .split(',')
        .find_map(|p| p.trim().parse().ok())
}

async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => return refuse(e.status(), Code::BadUserInput, e.body_text()),
    };
    let Some(protocol) = ws_protocol(&headers) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            Code::BadUserInput,
            "offer the graphql-transport-ws (or graphql-ws) subprotocol in Sec-WebSocket-Protocol",
        );
    };
    if !origin_allowed(&headers, &state.origins) {
        return refuse(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            "WebSocket connections from this origin are not allowed (see --cors-origin)",
        );
    }
    if *state.sockets.shutdown.borrow() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "the server is shutting down",
        );
    }
    let Ok(slot) = state.sockets.slots.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "too many WebSocket connections are open (--max-websockets): try again later",
        );
    };
    let max = state.max_body;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(max)
        .max_frame_size(max)
        // What waits for a peer that does not read: our buffer and one message.
        // Beyond it the pongs a ping flood asks for are coalesced into one (they
        // queued without bound: 124 MB of pings unread made 246 MB), and the
        // write-stall deadline closes the socket. An event larger than this cannot
        // be sent: the socket closes.
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_WRITE_BUFFER + WS_LARGEST_OUT.max(max))
        .on_upgrade(move |socket| async move {
            serve_socket(socket, state.door, protocol, state.sockets).await;
            drop(slot);
        })
}

/// The token of a `connection_init` payload: `{"Authorization": "Bearer <token>"}`
/// (graphql-ws clients' `connectionParams`), also under `headers`.
fn init_caller(payload: &serde_json::Value) -> Caller {
    let find = |v: &serde_json::Value| {
        v.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.as_str())
            .and_then(bearer)
    };
    let token = find(payload).or_else(|| payload.get("headers").and_then(find));
    Caller { token }
}

/// An incoming socket message, with its operation marked when its variables hold an
/// integer too wide for 64 bits (see [`mark_wide`]).
fn mark_wide_message(raw: Vec<u8>) -> Vec<u8> {
    let Some(path) = wide::in_json(&raw) else {
        return raw;
    };
    let Ok(mut message) = serde_json::from_slice::<serde_json::Value>(&raw) else {
        return raw;
    };
    let path = path
        .strip_prefix("payload.variables")
        .map_or(path.as_str(), |p| p.trim_start_matches('.'))
        .to_owned();
    if let Some(payload) = message.get_mut("payload").and_then(|p| p.as_object_mut()) {
        let ext = payload
            .entry("extensions")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(ext) = ext.as_object_mut() {
            ext.insert(WIDE_INTEGER.into(), serde_json::Value::String(path));
        }
    }
    serde_json::to_vec(&message).unwrap_or(raw)
}

/// Close codes of graphql-transport-ws for a refused `connection_init`; the door's
/// refusal travels as the close reason, prefixed with its code.
fn close_code(refusal: &Refusal) -> u16 {
    if refusal.status == StatusCode::FORBIDDEN {
        4403
    } else {
        4401
    }
}

/// Close codes of graphql-transport-ws for what async-graphql closes with its own
/// codes: a refused `connection_init` (its reason carries the door's code), an
/// operation before the handshake (4401) and an unreadable message (4400).
fn close_frame(code: u16, reason: String) -> CloseFrame {
    let (code, reason) = match (code, reason.split_once(' ')) {
        (1002, Some((c @ ("4401" | "4403"), rest))) => (c.parse().unwrap_or(4401), rest.to_owned()),
        (1002, _) => (4400, reason),
        (1011, _) if reason.contains("handshake") => (4401, "Unauthorized".to_owned()),
        _ => (code, reason),
    };
    close_with(code, reason)
}

/// A close frame; its reason cut to the 123 bytes a close frame holds.
fn close_with(code: u16, mut reason: String) -> CloseFrame {
    while reason.len() > 123 {
        reason.pop();
    }
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// The operation ids in use on one graphql-transport-ws socket.
#[derive(Default)]
struct OperationIds {
    active: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Why the socket is to close (code, reason), once a message broke the protocol.
    refusal: std::sync::Mutex<Option<(u16, String)>>,
}

/// The longest operation id kept: each open subscription holds its id (a 1 MB id
/// on each of 1,000 subscriptions held 1.9 GB, outside --max-subscription-bytes).
const MAX_OPERATION_ID: usize = 128;

#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

impl OperationIds {
    /// Notes a client message; false for a `subscribe` whose id is in use.
    fn incoming(&self, raw: &[u8]) -> bool {
        // A message that is not even an envelope is async-graphql's to refuse (4400).
        let Ok(Envelope { kind, id }) = serde_json::from_slice::<Envelope>(raw) else {
            return true;
        };
        if !matches!(
            kind.as_str(),
            "connection_init" | "ping" | "pong" | "subscribe" | "complete"
        ) {
            let shown: String = kind.chars().take(40).collect();
            return self.refuse(
                4400,
                format!("Invalid message received: graphql-transport-ws has no message `{shown}`"),
            );
        }
        let Some(id) = id else {
            return true;
        };
        if id.len() > MAX_OPERATION_ID {
            return self.refuse(
                4400,
                format!(
                    "Invalid message received: an operation id is at most {MAX_OPERATION_ID} bytes"
                ),
            );
        }
        let Ok(mut active) = self.active.lock() else {
            return true;
        };
        match kind.as_str() {
            "subscribe" if !active.insert(id.clone()) => {
                self.refuse(4409, format!("Subscriber for {id} already exists"))
            }
            "complete" => {
                active.remove(&id);
                true
            }
            _ => true,
        }
    }

    /// Notes a server message: `complete` and `error` end an operation. Only their
    /// short text is parsed, never an event's.
    fn outgoing(&self, text: &str) {
        if !(text.starts_with(r#"{"type":"complete""#) || text.starts_with(r#"{"type":"error""#)) {
            return;
        }
        if let (Ok(Envelope { id: Some(id), .. }), Ok(mut active)) =
            (serde_json::from_str::<Envelope>(text), self.active.lock())
        {
            active.remove(&id);
        }
    }

    /// Records why the socket closes; false, so that the input stops here.
    fn refuse(&self, code: u16, reason: String) -> bool {
        if let Ok(mut r) = self.refusal.lock() {
            r.get_or_insert((code, reason));
        }
        false
    }

    fn refusal(&self) -> Option<(u16, String)> {
        self.refusal.lock().ok().and_then(|r| r.clone())
    }
}

/// Why a socket was closed, for its log line.
fn close_reason(frame: Option<&CloseFrame>) -> String {
    frame.map_or_else(
        || "peer or protocol".to_owned(),
        |f| format!("{} {}", f.code, f.reason),
    )
}

async fn serve_socket(
    socket: WebSocket,
    door: Door,
    protocol: WebSocketProtocols,
    sockets: Sockets,
) {
    let conn = Connection::new();
    tracing::info!(connection = conn.id, "websocket open");
    let (mut sink, stream) = socket.split();
    let too_big = Arc::new(AtomicBool::new(false));
    let seen = too_big.clone();
    let opened = Instant::now();
    let heard = Arc::new(AtomicU64::new(0));
    let heard_in = heard.clone();
    let input = stream
        .take_while(move |m| {
            // tungstenite's capacity error is the one read error a client causes on
            // purpose; say so (1009) rather than dropping the connection.
            if let Err(e) = m {
                if e.to_string().contains("Space limit exceeded") {
                    seen.store(true, Ordering::Relaxed);
                }
            }
            heard_in.store(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
            std::future::ready(m.is_ok())
        })
        .filter_map(|m| {
            std::future::ready(match m {
                Ok(Message::Text(t)) => Some(mark_wide_message(t.as_bytes().to_vec())),
                Ok(Message::Binary(b)) => Some(mark_wide_message(b.to_vec())),
                _ => None,
            })
        });
    // graphql-transport-ws: a second `subscribe` with an id in use closes the socket
    // with 4409 (async-graphql would silently replace the first operation).
    let ids = Arc::new(OperationIds::default());
    let ids_in = ids.clone();
    let checks = protocol == WebSocketProtocols::GraphQLWS;
    let input = input.take_while(move |raw| std::future::ready(!checks || ids_in.incoming(raw)));
    let ids_out = ids.clone();
    let init_door = door.clone();
    let init_conn = conn.clone();
    let acked = Arc::new(AtomicBool::new(false));
    let init_acked = acked.clone();
    let output = GraphQLWebSocket::new(SocketExecutor(door), input, protocol)
        .on_connection_init(move |payload| async move {
            let caller = init_caller(&payload);
            init_door.admit(&caller).map_err(|r| {
                async_graphql::Error::new(format!("{} {}", close_code(&r), r.message))
            })?;
            let mut data = Data::default();
            data.insert(caller);
            data.insert(init_conn);
            init_acked.store(true, Ordering::Relaxed);
            Ok(data)
        })
        .map(move |message| match message {
            WsMessage::Text(text) => {
                ids_out.outgoing(&text);
                Message::Text(text.into())
            }
            WsMessage::Close(code, reason) => Message::Close(Some(close_frame(code, reason))),
        });
    futures_util::pin_mut!(output);
    let going_away = || CloseFrame {
        code: 1001,
        reason: "the server is shutting down".into(),
    };
    let too_slow = || CloseFrame {
        code: 1008,
        reason: "events were not read fast enough (--subscription-buffer)".into(),
    };
    let mut shutdown = sockets.shutdown.clone();
    let mut closing: Option<tokio::time::Instant> = None;
    let period = sockets.keepalive.unwrap_or(Duration::from_secs(3600));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let init_deadline = tokio::time::Instant::now() + sockets.init_timeout;
    let frame: Option<CloseFrame> = loop {
        if closing.is_some() && conn.open() == 0 {
            break Some(going_away());
        }
        let deadline =
            closing.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            item = output.next() => match item {
                Some(item) => {
                    let closes = matches!(item, Message::Close(_));
                    tokio::select! {
                        sent = sink.send(item) => if sent.is_err() { break None },
                        () = conn.dropped_for_slowness() => break Some(too_slow()),
                    }
                    if closes {
                        return log_closed(&conn, "protocol close");
                    }
                }
                None if too_big.load(Ordering::Relaxed) => break Some(CloseFrame {
                    code: 1009,
                    reason: "message too big (--max-body-bytes)".into(),
                }),
                None => break ids
                    .refusal()
                    .map(|(code, reason)| close_with(code, reason)),
            },
            () = conn.dropped_for_slowness() => break Some(too_slow()),
            () = crate::live::stopped(&mut shutdown), if closing.is_none() => {
                // Subscriptions end once the hub closes; what they buffered is sent
                // first, then 1001. A deadline bounds the wait.
                closing = Some(tokio::time::Instant::now() + Duration::from_secs(5));
            }
            () = tokio::time::sleep_until(deadline), if closing.is_some() => break Some(going_away()),
            () = tokio::time::sleep_until(init_deadline), if !acked.load(Ordering::Relaxed) => break Some(CloseFrame {
                // graphql-transport-ws's code for it.
                code: 4408,
                reason: "Connection initialisation timeout (--client-timeout)".into(),
            }),
            _ = ping.tick(), if sockets.keepalive.is_some() => {
                let silent = opened.elapsed().as_millis() as u64 - heard.load(Ordering::Relaxed);
                if silent > 3 * period.as_millis() as u64 {
                    break Some(CloseFrame { code: 1001, reason: "no answer to keep-alive pings".into() });
                }
                tokio::select! {
                    sent = sink.send(Message::Ping(Bytes::from_static(b"ka"))) => if sent.is_err() { break None },
                    () = conn.dropped_for_slowness() => break Some(too_slow()),
                }
            }
        }
    };
    let reason = close_reason(frame.as_ref());
    if let Some(frame) = frame {
        // A peer that reads nothing would hold this forever.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
    }
    log_closed(&conn, &reason);
}

fn log_closed(conn: &Connection, reason: &str) {
    tracing::info!(
        connection = conn.id,
        subscriptions = conn.subscribed(),
        events = conn.delivered(),
        too_slow = conn.is_too_slow(),
        reason,
        "websocket closed"
    );
}

/// Prometheus' text format; behind the read token when one is set.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = state.door.admit(&caller(&headers)) {
        return reply(refusal.answer());
    }
    let (pool_size, pool_idle, pool_max) = state.store.pool_stats();
    let gauges = crate::metrics::Gauges {
        pool_size,
        pool_idle,
        pool_max,
        websockets: state
            .max_websockets
            .saturating_sub(state.sockets.slots.available_permits()),
        subscriptions: state.hub.subscriptions(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&gauges),
    )
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.writes_failing() {
        tracing::warn!("not ready: writes are failing for want of storage");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                header::RETRY_AFTER,
                crate::error::STORAGE_RETRY_AFTER_SECS.to_string(),
            )],
            "writes are failing: the database is out of storage or has an I/O error",
        )
            .into_response();
    }
    match tokio::time::timeout(Duration::from_secs(5), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
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
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (router, live) = app_with_shutdown(&config, store, shutdown_rx)?;
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
    tracing::info!(?mode, "database ready");
    println!("buildsets-graphql: playground at http://{addr}/graphql ({mode:?} database)");
    crate::listen::accept_loop(listener, router, &config, &shutdown_tx).await;
    let deadline = Duration::from_secs(config.shutdown_timeout);
    if !live.sockets_closed(deadline).await {
        tracing::warn!("WebSockets still open after --shutdown-timeout: exiting anyway");
    }
    tracing::info!("shut down");
    Ok(())
}

/// Bytes a WebSocket gathers before it writes them out (tungstenite's default).
const WS_WRITE_BUFFER: usize = 128 << 10;

/// The largest message a WebSocket sends (or --max-body-bytes, if larger).
const WS_LARGEST_OUT: usize = 4 << 20;
