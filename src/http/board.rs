//! The board at `/`: a live view of recent buildsets, served from the binary and
//! built on nothing but the public GraphQL API. Its operations are the `.graphql`
//! files of `board/operations/`; the page carries their texts, and a server that runs
//! only trusted documents trusts them too (`persisted-query-manifest.json` lists them
//! for anyone who builds on them).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::reply::refuse_json;
use crate::error::Code;

/// The operations, by name, as written in `board/operations/`.
const OPERATIONS: &[(&str, &str)] = &[
    ("Board", include_str!("board/operations/Board.graphql")),
    ("Older", include_str!("board/operations/Older.graphql")),
    ("CatchUp", include_str!("board/operations/CatchUp.graphql")),
    ("Detail", include_str!("board/operations/Detail.graphql")),
    ("Added", include_str!("board/operations/Added.graphql")),
    (
        "Completed",
        include_str!("board/operations/Completed.graphql"),
    ),
    (
        "CancelBuildset",
        include_str!("board/operations/CancelBuildset.graphql"),
    ),
    (
        "CancelBuildRequest",
        include_str!("board/operations/CancelBuildRequest.graphql"),
    ),
];
const FRAGMENTS: &str = include_str!("board/operations/fragments.graphql");

const INDEX_HTML: &str = include_str!("board/index.html");
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "board.js",
        "text/javascript; charset=utf-8",
        include_bytes!("board/board.js"),
    ),
    (
        "board.css",
        "text/css; charset=utf-8",
        include_bytes!("board/board.css"),
    ),
];

/// No inline script or style: everything is the binary's, and the page talks only
/// to this server (`'self'` covers its WebSocket too).
const BOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// One operation of the board: its name, kind and full text (the operation, then
/// the fragments it spreads), and its id, the SHA-256 of the text.
pub struct Document {
    pub name: &'static str,
    pub kind: &'static str,
    pub body: String,
    pub id: String,
}

static DOCUMENTS: LazyLock<Vec<Document>> = LazyLock::new(|| {
    let fragments = split_fragments(FRAGMENTS);
    OPERATIONS
        .iter()
        .map(|(name, text)| {
            let mut body = text.trim_end().to_owned();
            for (fragment, definition) in &fragments {
                if text.contains(&format!("...{fragment}")) {
                    body.push_str("\n\n");
                    body.push_str(definition);
                }
            }
            body.push('\n');
            let kind = ["query", "mutation", "subscription"]
                .into_iter()
                .find(|k| text.lines().any(|l| l.starts_with(k)))
                .unwrap_or("query");
            Document {
                name,
                kind,
                id: hex::encode(Sha256::digest(body.as_bytes())),
                body,
            }
        })
        .collect()
});

/// The fragments of a file, by name, each with the comment lines above it.
fn split_fragments(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut comments = String::new();
    let mut depth = 0usize;
    for line in text.lines() {
        if depth == 0 {
            if let Some(rest) = line.strip_prefix("fragment ") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                out.push((name.to_owned(), std::mem::take(&mut comments)));
            } else {
                if line.starts_with('#') {
                    comments.push_str(line);
                    comments.push('\n');
                }
                continue;
            }
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
        if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.into_iter()
        .map(|(name, body)| (name, body.trim_end().to_owned()))
        .collect()
}

/// The board's documents, for `--trusted-documents`: (id, text).
pub fn documents() -> impl Iterator<Item = (String, String)> {
    DOCUMENTS.iter().map(|d| (d.id.clone(), d.body.clone()))
}

/// Apollo's persisted query manifest of the board's operations, as
/// `board/persisted-query-manifest.json` holds it.
pub fn manifest_json() -> String {
    let operations: Vec<serde_json::Value> = DOCUMENTS
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "name": d.name,
                "type": d.kind,
                "body": d.body,
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": operations,
    });
    let mut text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    text.push('\n');
    text
}

/// The page, with the operations' texts in a data block the script reads (`<` is
/// escaped, so no text can end the block).
static PAGE: LazyLock<(String, String)> = LazyLock::new(|| {
    let operations: serde_json::Map<String, serde_json::Value> = DOCUMENTS
        .iter()
        .map(|d| (d.name.to_owned(), serde_json::Value::String(d.body.clone())))
        .collect();
    let json = serde_json::Value::Object(operations)
        .to_string()
        .replace('<', "\\u003c");
    let mut page = INDEX_HTML.replace("{{OPERATIONS}}", &json);
    for (name, _, body) in ASSETS {
        page = page.replace(&format!("{{{{{name}}}}}"), &short_hash(body));
    }
    let tag = etag(page.as_bytes());
    (page, tag)
});

fn short_hash(body: &[u8]) -> String {
    hex::encode(&Sha256::digest(body)[..6])
}

fn etag(body: &[u8]) -> String {
    format!("\"{}\"", short_hash(body))
}

/// An answer the browser keeps but asks about again (`no-cache` + ETag): a new
/// binary's board shows at once, an unchanged one costs a 304.
fn cached(
    headers: &HeaderMap,
    content_type: &'static str,
    tag: &str,
    body: &'static [u8],
) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        // A proxy that compresses may weaken the tag (`W/"…"`); the bytes are still ours.
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == tag)
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    response
}

pub async fn page(headers: HeaderMap) -> Response {
    let (page, tag) = &*PAGE;
    let mut response = cached(&headers, "text/html; charset=utf-8", tag, page.as_bytes());
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(BOARD_CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Each asset's ETag, hashed once rather than per request.
static ASSET_TAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|(_, _, body)| etag(body)).collect());

pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|(name, _, _)| *name == file) {
        Some(i) => {
            let (_, content_type, body) = ASSETS[i];
            cached(&headers, content_type, &ASSET_TAGS[i], body)
        }
        None => refuse_json(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            format!(
                "no asset {:?}: the board is at /",
                file.chars().take(80).collect::<String>()
            ),
        ),
    }
}

static MANIFEST: LazyLock<(String, String)> = LazyLock::new(|| {
    let text = manifest_json();
    let tag = etag(text.as_bytes());
    (text, tag)
});

pub async fn manifest(headers: HeaderMap) -> Response {
    let (text, tag) = &*MANIFEST;
    cached(&headers, "application/json", tag, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed manifest is what the server trusts: regenerate it with
    /// `UPDATE_MANIFEST=1 cargo test board`.
    #[test]
    fn the_committed_manifest_lists_the_operations() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/http/board/persisted-query-manifest.json"
        );
        let generated = manifest_json();
        if std::env::var_os("UPDATE_MANIFEST").is_some() {
            std::fs::write(path, &generated).expect("write the manifest");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is not what the operations give: run UPDATE_MANIFEST=1 cargo test board"
        );
    }

    #[test]
    fn every_operation_parses_with_its_fragments() {
        assert_eq!(DOCUMENTS.len(), OPERATIONS.len());
        for d in DOCUMENTS.iter() {
            let doc = async_graphql::parser::parse_query(&d.body)
                .unwrap_or_else(|e| panic!("{}: {e}", d.name));
            assert_eq!(doc.operations.iter().count(), 1, "{}", d.name);
            for (name, _) in split_fragments(FRAGMENTS) {
                assert_eq!(
                    d.body.contains(&format!("fragment {name} ")),
                    d.body.contains(&format!("...{name}")),
                    "{}: fragment {name}",
                    d.name
                );
            }
        }
    }
}
