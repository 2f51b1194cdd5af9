//! HTTP: connect and prepare the database, build the router, serve until a signal.

use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse, GraphQLSubscription};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sea_orm::DatabaseConnection;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

use crate::config::Config;
use crate::error::{coded, RequestId};
use crate::graphql::{build_schema, with_codes, ApiSchema, AppData, Caller, Limits};
use crate::store::{self, SchemaMode};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects and makes the schema usable (migrated, or checked when attached).
pub async fn open_database(url: &str) -> Result<(DatabaseConnection, SchemaMode), BoxError> {
    Ok(store::open(url).await?)
}

/// What the HTTP layer needs besides the schema.
#[derive(Clone)]
pub struct HttpState {
    pub schema: ApiSchema,
    pub db: DatabaseConnection,
    pub read_token: Option<String>,
    pub write_tokens: Vec<String>,
}

pub fn schema_for(db: DatabaseConnection, mode: SchemaMode, config: &Config) -> ApiSchema {
    build_schema(AppData {
        db,
        mode,
        limits: Limits {
            max_page: config.max_page_size,
            max_depth: config.max_depth,
            max_complexity: config.max_complexity,
            ..Limits::default()
        },
        write_tokens: config.write_tokens.clone(),
    })
}

/// The router: `/graphql` (POST, GET with `?query=`, or the playground),
/// `/graphql/ws`, `/healthz`, `/readyz`.
pub fn app(state: HttpState, config: &Config) -> Router {
    let cors = if config.cors_origins.is_empty() {
        CorsLayer::new()
    } else {
        let origins: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
    };
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route_service(
            "/graphql/ws",
            GraphQLSubscription::new(state.schema.clone()),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(cors)
        .layer(TraceLayer::new_for_http())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

fn error_response(status: StatusCode, code: &'static str, message: &str) -> Response {
    let err = coded(code, message).into_server_error(async_graphql::Pos::default());
    let body = async_graphql::Response::from_errors(vec![err]);
    (status, axum::Json(body)).into_response()
}

async fn execute(state: &HttpState, headers: &HeaderMap, req: async_graphql::Request) -> Response {
    let token = bearer(headers);
    if let Some(read) = &state.read_token {
        let allowed = token
            .as_deref()
            .is_some_and(|t| t == read || state.write_tokens.iter().any(|w| w == t));
        if !allowed {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "this server needs `Authorization: Bearer <token>` for every request",
            );
        }
    }
    let request_id = RequestId::new();
    // Instrumenting (not entering) the span: an entered guard held across an await
    // would be attached to whatever else runs on this thread meanwhile.
    let span = tracing::info_span!("graphql", request_id = %request_id.0);
    let req = req.data(Caller { token }).data(request_id);
    let response = with_codes(state.schema.execute(req).instrument(span).await);
    GraphQLResponse::from(response).into_response()
}

async fn graphql_post(
    State(state): State<HttpState>,
    headers: HeaderMap,
    req: GraphQLRequest,
) -> Response {
    execute(&state, &headers, req.into_inner()).await
}

/// GET runs queries given as `?query=`; without one it serves the playground.
/// Mutations are never run from a GET (a link must not change data).
async fn graphql_get(
    State(state): State<HttpState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if uri
        .query()
        .is_none_or(|q| !q.split('&').any(|kv| kv.starts_with("query=")))
    {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .finish(),
        )
        .into_response();
    }
    let req: async_graphql::Request =
        match async_graphql::http::parse_query_string(uri.query().unwrap_or_default()) {
            Ok(r) => r,
            Err(e) => {
                return error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", &e.to_string())
            }
        };
    if let Ok(doc) = async_graphql::parser::parse_query(&req.query) {
        let mutation = doc.operations.iter().any(|(name, op)| {
            let selected = match (&req.operation_name, name) {
                (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
                (None, _) => true,
                (Some(_), None) => false,
            };
            selected && op.node.ty == OperationType::Mutation
        });
        if mutation {
            return error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "BAD_USER_INPUT",
                "mutations must be sent with POST",
            );
        }
    }
    execute(&state, &headers, req).await
}

async fn readyz(State(state): State<HttpState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(5), state.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

/// Refuses configurations that would expose open writes beyond this machine.
pub fn check_exposure(config: &Config) -> Result<(), String> {
    if !config.listen.ip().is_loopback()
        && config.write_tokens.is_empty()
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

/// Serves until SIGINT/SIGTERM, then lets in-flight requests finish.
pub async fn serve(config: Config) -> Result<(), BoxError> {
    check_exposure(&config)?;
    let (db, mode) = open_database(&config.database_url).await?;
    let schema = schema_for(db.clone(), mode, &config);
    let state = HttpState {
        schema,
        db,
        read_token: config.read_token.clone(),
        write_tokens: config.write_tokens.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(?mode, "database ready");
    println!("buildsets-graphql: playground at http://{addr}/graphql ({mode:?} database)");
    axum::serve(listener, app(state, &config))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shut down");
    Ok(())
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
