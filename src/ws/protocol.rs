//! graphql-transport-ws (the GraphQL over WebSocket protocol): its messages and
//! close codes as types, parsed once.

use async_graphql::{ServerError, Value};
use axum::extract::ws::{CloseFrame, Message};
use serde::{Deserialize, Serialize};

/// The subprotocol spoken, as offered in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// The longest operation id kept: each open subscription holds its id (a 1 MB id
/// on each of 1,000 subscriptions held 1.9 GB, outside --max-subscription-bytes).
pub const MAX_OPERATION_ID: usize = 128;

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<serde_json::Value>,
    },
    Subscribe {
        id: String,
        payload: Box<async_graphql::Request>,
    },
    Complete {
        id: String,
    },
}

impl ClientMessage {
    /// Parses one text or binary frame's bytes; the close that answers a message
    /// graphql-transport-ws does not have.
    pub fn parse(raw: &[u8]) -> Result<ClientMessage, Close> {
        let message: ClientMessage = serde_json::from_slice(raw).map_err(|e| {
            Close::new(
                CloseCode::BadRequest,
                format!("Invalid message received: {}", first_line(&e.to_string())),
            )
        })?;
        match &message {
            ClientMessage::Subscribe { id, .. } | ClientMessage::Complete { id }
                if id.len() > MAX_OPERATION_ID =>
            {
                Err(Close::new(
                    CloseCode::BadRequest,
                    format!("Invalid message received: an operation id is at most {MAX_OPERATION_ID} bytes"),
                ))
            }
            _ => Ok(message),
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect()
}

/// A message to the client.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    ConnectionAck,
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<serde_json::Value>,
    },
    Next {
        id: &'a str,
        payload: Payload<'a>,
    },
    /// A request error: the operation did not run (parse, validation, a limit).
    Error {
        id: &'a str,
        payload: &'a [ServerError],
    },
    Complete {
        id: &'a str,
    },
}

/// An execution result, as `next` carries it.
#[derive(Serialize)]
pub struct Payload<'a> {
    pub data: &'a Value,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub errors: &'a [ServerError],
}

impl ServerMessage<'_> {
    pub fn frame(&self) -> Message {
        match serde_json::to_string(self) {
            Ok(text) => Message::Text(text.into()),
            // Values are JSON already; nothing here can fail to serialise.
            Err(e) => Close::new(CloseCode::InternalError, e.to_string()).frame(),
        }
    }
}

/// The close codes this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// 1001: the server is shutting down, or the peer stopped answering pings.
    GoingAway,
    /// 1008: the peer did not read its events fast enough.
    PolicyViolation,
    /// 1009: a message over --max-body-bytes.
    TooBig,
    /// 4400: a message the protocol does not have.
    BadRequest,
    /// 4401: no valid token, or an operation before `connection_ack`.
    Unauthorized,
    /// 4403: a token that does not open this server.
    Forbidden,
    /// 4408: no `connection_init` within --client-timeout.
    InitTimeout,
    /// 4409: a `subscribe` with an id already in use.
    SubscriberExists,
    /// 4429: a second `connection_init`.
    TooManyInits,
    /// 4500: the server failed.
    InternalError,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1001,
            CloseCode::PolicyViolation => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::BadRequest => 4400,
            CloseCode::Unauthorized => 4401,
            CloseCode::Forbidden => 4403,
            CloseCode::InitTimeout => 4408,
            CloseCode::SubscriberExists => 4409,
            CloseCode::TooManyInits => 4429,
            CloseCode::InternalError => 4500,
        }
    }
}

/// Why a socket closes: a code and a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: CloseCode,
    pub reason: String,
}

impl Close {
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Close {
        Close {
            code,
            reason: reason.into(),
        }
    }

    /// The close frame; its reason cut to the 123 bytes a close frame holds.
    pub fn frame(&self) -> Message {
        let mut reason = self.reason.clone();
        while reason.len() > 123 {
            reason.pop();
        }
        Message::Close(Some(CloseFrame {
            code: self.code.code(),
            reason: reason.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_once_into_types() {
        assert!(matches!(
            ClientMessage::parse(br#"{"type":"connection_init","payload":{"a":1}}"#),
            Ok(ClientMessage::ConnectionInit { payload: Some(_) })
        ));
        assert!(matches!(
            ClientMessage::parse(br#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping { payload: None })
        ));
        match ClientMessage::parse(
            br#"{"id":"1","type":"subscribe","payload":{"query":"{ a }","operationName":"A","variables":{"x":1}}}"#,
        ) {
            Ok(ClientMessage::Subscribe { id, payload }) => {
                assert_eq!(id, "1");
                assert_eq!(payload.query, "{ a }");
                assert_eq!(payload.operation_name.as_deref(), Some("A"));
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            &br#"{"type":"start","id":"1"}"#[..],
            br#"{"type":"subscribe","id":"1"}"#,
            br#"{"type":"complete"}"#,
            b"not json",
        ] {
            let close = ClientMessage::parse(bad).expect_err("refused");
            assert_eq!(close.code, CloseCode::BadRequest);
        }
        let long = format!(r#"{{"type":"complete","id":"{}"}}"#, "x".repeat(129));
        assert_eq!(
            ClientMessage::parse(long.as_bytes())
                .expect_err("long")
                .code,
            CloseCode::BadRequest
        );
    }

    #[test]
    fn close_reasons_fit_a_frame() {
        let Message::Close(Some(frame)) = Close::new(CloseCode::Forbidden, "é".repeat(100)).frame()
        else {
            panic!("a close frame");
        };
        assert_eq!(frame.code, 4403);
        assert!(frame.reason.len() <= 123);
    }
}
