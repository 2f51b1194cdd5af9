//! Request bodies: decoded per their Content-Encoding, bounded in size and in time.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::reply::refuse_request;
use crate::error::Code;

/// The request body codings that are decoded; any other is refused (415) rather
/// than read as if it were plain.
const CODINGS: [&str; 4] = ["identity", "gzip", "deflate", "br"];

/// Refuses a body in a coding that is not decoded, naming those that are; the names
/// are case-insensitive (RFC 9110), the decoder's are lowercase.
pub async fn known_coding(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let lower = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.bytes().any(|b| b.is_ascii_uppercase()))
        .and_then(|v| HeaderValue::from_str(&v.to_ascii_lowercase()).ok());
    if let Some(lower) = lower {
        request
            .headers_mut()
            .insert(header::CONTENT_ENCODING, lower);
    }
    let unknown = request
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{fffd}").split(','))
        .map(str::trim)
        .find(|c| !c.is_empty() && !CODINGS.iter().any(|k| k.eq_ignore_ascii_case(c)))
        .map(|c| c.chars().take(40).collect::<String>());
    match unknown {
        None => next.run(request).await,
        Some(coding) => {
            let mut response = refuse_request(
                (request.method(), request.uri(), request.headers()),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::BadRequest,
                format!(
                    "the request body's Content-Encoding `{}` is not supported: send it plain, or as {}",
                    coding.escape_debug(),
                    CODINGS[1..].join(", ")
                ),
            );
            response.headers_mut().insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("gzip, deflate, br"),
            );
            response
        }
    }
}

/// Why a body could not be read, in the decoder's words (a gzip body cut short: "unexpected end of file").
fn reason(error: &axum::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text = e.to_string();
        source = e.source();
    }
    text.chars().take(200).collect()
}

/// Whether reading a body failed at its length limit (http-body-util's
/// `Limited`, under axum's `to_bytes`).
fn is_length_limit(error: &axum::Error) -> bool {
    std::error::Error::source(error).is_some_and(|e| e.is::<http_body_util::LengthLimitError>())
}

/// The whole request body within `--client-timeout`: hyper's and tower-http's
/// deadlines run between two chunks, so a body sent a byte every few seconds would
/// hold its connection for ever.
pub async fn body_deadline(
    State((deadline, max_body)): State<(Duration, usize)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        // Refused before a byte of it is read or waited for.
        return closing(refuse_request(
            (request.method(), request.uri(), request.headers()),
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BadRequest,
            format!("the request body exceeds the limit of {max_body} bytes (--max-body-bytes)"),
        ));
    }
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, max_body.saturating_add(1));
    match tokio::time::timeout(deadline, read).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Ok(Err(e)) if is_length_limit(&e) => closing(refuse_request(
            (&parts.method, &parts.uri, &parts.headers),
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BadRequest,
            format!("the request body exceeds the limit of {max_body} bytes (--max-body-bytes)"),
        )),
        Ok(Err(e)) => closing(refuse_request(
            (&parts.method, &parts.uri, &parts.headers),
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            format!("the request body could not be read: {}", reason(&e)),
        )),
        Err(_) => closing(refuse_request(
            (&parts.method, &parts.uri, &parts.headers),
            StatusCode::REQUEST_TIMEOUT,
            Code::BadRequest,
            format!(
                "the request body did not arrive within {} s (--client-timeout)",
                deadline.as_secs()
            ),
        )),
    }
}

/// A refusal sent before the body was read to its end: the connection cannot carry
/// another request (the rest of this body would be read as one), and saying so lets
/// a client open a new one instead of sending its next request into a socket the
/// server is closing.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
