//! The playground: GraphiQL, pinned and embedded, so that it works with no network,
//! and the favicon.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::reply::refuse_json;
use crate::error::Code;

// GraphiQL 3.8.3, its explorer plugin 3.2.5 and React 18.3.1, plus this server's own
// playground.js, playground.css and favicon.svg; `playground/SHA256SUMS` records them.
const INDEX_HTML: &str = include_str!("playground/index.html");
const FAVICON: &[u8] = include_bytes!("playground/favicon.svg");
const SVG: &str = "image/svg+xml";
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
        "graphiql-plugin-explorer.umd.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/graphiql-plugin-explorer.umd.js"),
    ),
    (
        "graphiql-plugin-explorer.css",
        "text/css; charset=utf-8",
        include_bytes!("playground/graphiql-plugin-explorer.css"),
    ),
    (
        "playground.js",
        "text/javascript; charset=utf-8",
        include_bytes!("playground/playground.js"),
    ),
    (
        "playground.css",
        "text/css; charset=utf-8",
        include_bytes!("playground/playground.css"),
    ),
    ("favicon.svg", SVG, FAVICON),
];

/// Nothing of the page may come from another host.
const PLAYGROUND_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

pub fn playground() -> Response {
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

/// `/favicon.ico`, asked for by browsers on any page of this server: the same SVG as
/// `/graphql/assets/favicon.svg` (browsers take an SVG under that name).
pub async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, SVG),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        FAVICON,
    )
        .into_response()
}

pub async fn asset(Path(file): Path<String>) -> Response {
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
        None => refuse_json(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            format!("no asset {file:?}: the playground is at /graphql"),
        ),
    }
}
