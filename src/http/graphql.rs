//! GraphQL over HTTP: POST with a JSON body, GET with `?query=` (queries only), or
//! the playground on a plain GET.

use std::convert::Infallible;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::reply::{refuse_logged, reply, Media, REQUEST_ID};
use super::AppState;
use crate::door::{wide, Transport, DOCUMENT_ID};
use crate::error::{Code, RequestId};

pub use crate::door::Caller;

/// Who sent a request: the bearer token of its `Authorization` header.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(Caller::bearer);
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("(not text)"))
        };
        let (read_from, bad_read_header) = match Caller::read_from(
            header(crate::door::READ_FROM),
            header(crate::door::READ_AFTER),
        ) {
            Ok(r) => (r, None),
            Err(why) => (Default::default(), Some(why)),
        };
        Ok(Caller {
            token,
            read_from,
            bad_read_header,
        })
    }
}

/// The request's id, as tower-http's layer set it (a client's well-formed one, or ours).
impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map_or_else(RequestId::new, |id| RequestId(id.to_owned())))
    }
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

/// One request on its way to the door: every refusal before it is logged and
/// counted as the door's own answers are (one line, one `bsgql_requests_total`).
struct Arrival<'a> {
    state: &'a AppState,
    request_id: &'a RequestId,
    transport: Transport,
    started: Instant,
}

impl Arrival<'_> {
    fn refuse(
        &self,
        media: Media,
        status: StatusCode,
        code: Code,
        message: impl Into<String>,
    ) -> Response {
        refuse_logged(
            media,
            (self.transport, self.request_id, self.started),
            status,
            code,
            message,
        )
    }

    /// The media type to answer in, once the caller may run anything at all: the
    /// token rule answers before anything about the request itself (401 before 415).
    // The refusal is the response itself, built once and moved once; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    fn admitted(&self, headers: &HeaderMap, caller: &Caller) -> Result<Media, Response> {
        let Some(media) = Media::negotiate(headers) else {
            return Err(self.refuse(
                Media::Json,
                StatusCode::NOT_ACCEPTABLE,
                Code::BadRequest,
                "this server answers in application/graphql-response+json or application/json: accept one of them",
            ));
        };
        match self.state.door.admit(caller) {
            Ok(()) => {}
            Err(refusal) => {
                return Err(self.refuse(media, refusal.status, refusal.code, refusal.message))
            }
        }
        match &caller.bad_read_header {
            Some(why) => Err(self.refuse(media, StatusCode::BAD_REQUEST, Code::BadRequest, why)),
            None => Ok(media),
        }
    }
}

pub async fn post(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let arrival = Arrival {
        state: &state,
        request_id: &request_id,
        transport: Transport::Post,
        started: Instant::now(),
    };
    let media = match arrival.admitted(&headers, &caller) {
        Ok(m) => m,
        Err(refusal) => return refusal,
    };
    if !is_json(&headers) {
        return arrival.refuse(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BadRequest,
            "POST /graphql takes a JSON body: send `Content-Type: application/json`",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return arrival.refuse(
                media,
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::BadRequest,
                format!(
                    "the request body exceeds the limit of {} bytes (--max-body-bytes)",
                    state.max_body
                ),
            )
        }
        Err(e) => return arrival.refuse(media, e.status(), Code::BadRequest, e.body_text()),
    };
    let mut request = match parse_body(&body) {
        Ok(r) => r,
        Err(message) => {
            return arrival.refuse(media, StatusCode::BAD_REQUEST, Code::BadRequest, message)
        }
    };
    wide::mark(&mut request, &body, "variables");
    reply(
        state
            .door
            .run(request, caller, Transport::Post, request_id)
            .await,
        media,
    )
}

/// A POST body as a GraphQL request, or why it is not one.
fn parse_body(body: &[u8]) -> Result<async_graphql::Request, String> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err("batched requests are not supported: send one operation per request".into());
    }
    let mut request: async_graphql::Request = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not a GraphQL request (a JSON object with a `query` string): {e}")
    })?;
    // A document named by id (GraphQL over HTTP's persisted documents; Relay's
    // `doc_id`) sits beside `query`, where async-graphql's request has no field for
    // it: read again only when the body could hold it.
    if contains(body, b"\"documentId\"") || contains(body, b"\"doc_id\"") {
        #[derive(serde::Deserialize)]
        struct Named {
            #[serde(rename = "documentId", alias = "doc_id")]
            document_id: Option<serde_json::Value>,
        }
        let named: Named = serde_json::from_slice(body)
            .map_err(|e| format!("the body is not a GraphQL request: {e}"))?;
        if let Some(id) = named.document_id {
            let id = serde_json::from_value(id)
                .map_err(|_| "`documentId` must be a string".to_owned())?;
            request
                .extensions
                .insert(DOCUMENT_ID.to_owned(), async_graphql::Value::String(id));
        }
    }
    Ok(request)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// GET runs queries given as `?query=`; without one it serves the playground.
/// Mutations are never run from a GET (a link must not change data).
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or_default();
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    // A persisted query comes as `?extensions=` (Apollo's GET for hashed queries) or
    // `?documentId=` (Relay: `?doc_id=`), without a `query`.
    let names_operation = |k: &str| matches!(k, "query" | "extensions" | "documentId" | "doc_id");
    if !params.iter().any(|(k, _)| names_operation(k)) {
        return super::assets::playground();
    }
    let arrival = Arrival {
        state: &state,
        request_id: &request_id,
        transport: Transport::Get,
        started: Instant::now(),
    };
    let media = match arrival.admitted(&headers, &caller) {
        Ok(m) => m,
        Err(refusal) => return refusal,
    };
    let mut request = match async_graphql::http::parse_query_string(query) {
        Ok(r) => r,
        Err(e) => {
            return arrival.refuse(
                media,
                StatusCode::BAD_REQUEST,
                Code::BadRequest,
                format!("the query string is not a GraphQL request: {e}"),
            )
        }
    };
    if let Some((_, variables)) = params.iter().find(|(k, _)| k == "variables") {
        wide::mark(&mut request, variables.as_bytes(), "");
    }
    if let Some((_, id)) = params
        .iter()
        .find(|(k, _)| k == "documentId" || k == "doc_id")
    {
        request.extensions.insert(
            DOCUMENT_ID.to_owned(),
            async_graphql::Value::String(id.clone()),
        );
    }
    // GraphQL over HTTP names it `operationName`; async-graphql's GET parser reads
    // `operation_name`.
    if let Some((_, name)) = params.iter().find(|(k, _)| k == "operationName") {
        request.operation_name = Some(name.clone()).filter(|n| !n.is_empty());
    }
    reply(
        state
            .door
            .run(request, caller, Transport::Get, request_id)
            .await,
        media,
    )
}
