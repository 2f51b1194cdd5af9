//! The WebSocket upgrade at `/graphql/ws`: the subprotocol, the origin, the socket
//! cap, and the bounds on what a socket may buffer.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::protocol::SUBPROTOCOL;
use super::session::Session;
use crate::config::Origins;
use crate::error::Code;
use crate::http::reply::refuse_json as refuse;
use crate::http::AppState;

/// Bytes a WebSocket gathers before it writes them out (tungstenite's default).
const WS_WRITE_BUFFER: usize = 128 << 10;

/// The largest message a WebSocket sends (or --max-body-bytes, if larger).
const WS_LARGEST_OUT: usize = 4 << 20;

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

/// Whether the client offers graphql-transport-ws in `Sec-WebSocket-Protocol`.
fn offers_protocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => return refuse(e.status(), Code::BadRequest, e.body_text()),
    };
    if !offers_protocol(&headers) {
        return refuse(
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            "offer the graphql-transport-ws subprotocol in Sec-WebSocket-Protocol (the legacy graphql-ws protocol of subscriptions-transport-ws is not spoken)",
        );
    }
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
    let max = state.sockets.max_message;
    upgrade
        .protocols([SUBPROTOCOL])
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
            Session::new(state.door, state.sockets).run(socket).await;
            drop(slot);
        })
}
