//! What goes back over HTTP: the media type the client accepts (GraphQL over HTTP's
//! `application/graphql-response+json` first, then `application/json`), the status
//! that goes with the answer under it, the body, and the request id.

use std::collections::BTreeMap;

use async_graphql::{ServerError, Value};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::door::{Answer, Refusal, Status};
use crate::error::{Code, RequestId};

/// The response header (and accepted request header) that names a request.
pub const REQUEST_ID: &str = "x-request-id";

pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/graphql-response+json`: the status says whether the request
    /// was executed (400 for a request that could not be).
    GraphqlResponse,
    /// `application/json`: 200 for every well-formed request, errors or not.
    Json,
}

impl Media {
    /// The media type to answer in, from `Accept` (none: `application/json`, as
    /// the spec asks of servers while clients move over). `None` when the client
    /// accepts neither: 406.
    pub fn negotiate(headers: &HeaderMap) -> Option<Media> {
        let given = headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().is_empty());
        if !given {
            return Some(Media::Json);
        }
        let ranges: Vec<String> = headers
            .get_all(header::ACCEPT)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .filter_map(accepted_range)
            .collect();
        let has = |m: &str| ranges.iter().any(|r| r == m);
        if has(GRAPHQL_RESPONSE) {
            Some(Media::GraphqlResponse)
        } else if has(JSON) || has("application/*") || has("*/*") {
            Some(Media::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        }
    }

    /// The status of an answer under this media type.
    fn status(self, status: Status) -> StatusCode {
        match (status, self) {
            (Status::Executed, _) => StatusCode::OK,
            (Status::Http(s), _) => s,
            (Status::RequestError | Status::Unavailable, Media::Json) => StatusCode::OK,
            (Status::RequestError, Media::GraphqlResponse) => StatusCode::BAD_REQUEST,
            (Status::Unavailable, Media::GraphqlResponse) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// One media range of an `Accept` header, lowercased without its parameters; `None`
/// for an empty one or one refused with `q=0`.
fn accepted_range(range: &str) -> Option<String> {
    let mut parts = range.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let refused = parts.any(|p| {
        p.trim()
            .strip_prefix("q=")
            .and_then(|q| q.trim().parse::<f32>().ok())
            .is_some_and(|q| q <= 0.0)
    });
    (!essence.is_empty() && !refused).then_some(essence)
}

/// The body of a GraphQL response: no `data` entry for a request that was not
/// executed (GraphQL over HTTP), a newline at the end for terminals.
#[derive(serde::Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
}

/// An answer as an HTTP response in `media`.
pub fn reply(answer: Answer, media: Media) -> Response {
    let status = media.status(answer.status);
    let response = &answer.response;
    let body = Body {
        errors: &response.errors,
        data: (answer.status == Status::Executed).then_some(&response.data),
        extensions: &response.extensions,
    };
    let mut bytes = match serde_json::to_vec(&body) {
        Ok(b) => b,
        // Values are JSON already; nothing here can fail to serialise.
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be serialised");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    bytes.push(b'\n');
    let mut out = (
        status,
        [(header::CONTENT_TYPE, media.content_type())],
        bytes,
    )
        .into_response();
    let headers = out.headers_mut();
    for (name, value) in &response.http_headers {
        headers.insert(name, value.clone());
    }
    match status {
        StatusCode::UNAUTHORIZED => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"buildsets-graphql\""),
            );
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        _ => {}
    }
    out
}

/// A refusal before any operation, in `media`.
pub fn refuse(
    media: Media,
    status: StatusCode,
    code: Code,
    message: impl Into<String>,
) -> Response {
    reply(Refusal::new(status, code, message).answer(), media)
}

/// A refusal by a layer in front of the routes (the Host check, the body's coding,
/// size or time): `application/json`, logged and counted as the door's answers are,
/// under the request's id.
pub fn refuse_request(
    parts: (
        &axum::http::Method,
        &axum::http::Uri,
        &axum::http::HeaderMap,
    ),
    status: StatusCode,
    code: Code,
    message: impl Into<String>,
) -> Response {
    use crate::door::Transport;
    let (method, uri, headers) = parts;
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map_or_else(RequestId::new, |v| RequestId(v.to_owned()));
    let transport = if uri.path().ends_with("/ws") {
        Transport::WebSocket
    } else if method == axum::http::Method::GET {
        Transport::Get
    } else {
        Transport::Post
    };
    refuse_logged(
        Media::Json,
        (transport, &request_id, std::time::Instant::now()),
        status,
        code,
        message,
    )
}

/// A refusal of a request that never reached the door's `run`, logged and counted
/// as the door's answers are (one line, one `bsgql_requests_total`).
pub fn refuse_logged(
    media: Media,
    (transport, request_id, started): (crate::door::Transport, &RequestId, std::time::Instant),
    status: StatusCode,
    code: Code,
    message: impl Into<String>,
) -> Response {
    let answer = Refusal::new(status, code, message).answer();
    crate::door::log_refused(&answer, transport, request_id, started);
    reply(answer, media)
}

/// A refusal where no media type was negotiated (outside `/graphql`):
/// `application/json`.
pub fn refuse_json(status: StatusCode, code: Code, message: impl Into<String>) -> Response {
    refuse(Media::Json, status, code, message)
}

/// A client's `x-request-id` is kept when it is well-formed (1-64 characters of
/// letters, digits, `.`, `_`, `:` and `-`); otherwise the request gets one of ours.
pub fn well_formed_request_id(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    (1..=64).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

/// Drops a malformed incoming request id, so that tower-http's layer makes one.
pub async fn request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let malformed = request
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|v| !well_formed_request_id(v));
    if malformed {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Makes our request ids for tower-http's `SetRequestIdLayer`.
#[derive(Clone, Copy, Default)]
pub struct MakeId;

impl tower_http::request_id::MakeRequestId for MakeId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        HeaderValue::from_str(&crate::error::RequestId::new().0)
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<Media> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).expect("ascii"));
        Media::negotiate(&h)
    }

    #[test]
    fn the_spec_media_type_comes_first() {
        assert_eq!(Media::negotiate(&HeaderMap::new()), Some(Media::Json));
        assert_eq!(accept("application/json"), Some(Media::Json));
        assert_eq!(accept("*/*"), Some(Media::Json));
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("Application/GraphQL-Response+JSON; charset=utf-8"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(accept("text/html"), None);
        assert_eq!(accept("application/json;q=0"), None);
    }

    #[test]
    fn request_ids_are_checked() {
        for ok in ["abc", "0192-af.x_y:z", &"a".repeat(64)] {
            assert!(well_formed_request_id(
                &HeaderValue::from_str(ok).expect("ascii")
            ));
        }
        for bad in ["", "a b", "a\"b", &"a".repeat(65), "é"] {
            let v = HeaderValue::from_bytes(bad.as_bytes()).expect("bytes");
            assert!(!well_formed_request_id(&v), "{bad}");
        }
    }
}
