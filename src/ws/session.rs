//! One graphql-transport-ws socket: the handshake, keep-alive, the operations it
//! runs, and how it closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Data;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::{self, BoxStream, SelectAll};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::protocol::{ClientMessage, Close, CloseCode, Payload, ServerMessage};
use super::Sockets;
use crate::door::{Answer, Caller, Door, Status};
use crate::live::Connection;

/// What an operation's stream yields: its id, the generation of that id, and an
/// answer, or `None` once it has ended.
type Event = (String, u64, Option<Answer>);

/// What one turn of the loop leads to.
enum Step {
    Nothing,
    Send(Vec<Message>),
    Close(Close),
    /// The peer is gone (closed, or the connection broke).
    Gone,
}

pub struct Session {
    door: Door,
    sockets: Sockets,
    conn: Arc<Connection>,
    /// Set by an accepted `connection_init`: who the operations run as.
    session: Option<Arc<Data>>,
    caller: Option<Caller>,
    /// The operations running, by id: their generation and the sender whose drop
    /// stops them.
    operations: HashMap<String, (u64, oneshot::Sender<()>)>,
    generation: u64,
    running: SelectAll<BoxStream<'static, Event>>,
    /// When the peer was last heard from.
    heard: Instant,
}

impl Session {
    pub fn new(door: Door, sockets: Sockets) -> Session {
        Session {
            door,
            sockets,
            conn: Connection::new(),
            session: None,
            caller: None,
            operations: HashMap::new(),
            generation: 0,
            running: SelectAll::new(),
            heard: Instant::now(),
        }
    }

    /// Serves the socket until it closes.
    pub async fn run(mut self, socket: WebSocket) {
        tracing::info!(connection = self.conn.id, "websocket open");
        let (mut sink, mut input) = socket.split();
        let mut shutdown = self.sockets.shutdown.clone();
        let mut closing: Option<Instant> = None;
        let period = self.sockets.keepalive.unwrap_or(Duration::from_secs(3600));
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        let init_deadline = Instant::now() + self.sockets.init_timeout;
        let far = Instant::now() + Duration::from_secs(365 * 86_400);
        loop {
            if closing.is_some() && self.running.is_empty() {
                return self
                    .close(&mut sink, Close::new(CloseCode::GoingAway, GOING_AWAY))
                    .await;
            }
            let step = tokio::select! {
                incoming = input.next() => self.incoming(incoming),
                Some(event) = self.running.next() => self.outgoing(event),
                () = self.conn.dropped_for_slowness() => Step::Close(too_slow()),
                () = crate::live::stopped(&mut shutdown), if closing.is_none() => {
                    // Subscriptions end once the hub closes; what they buffered is
                    // sent first, then 1001. A deadline bounds the wait.
                    closing = Some(Instant::now() + Duration::from_secs(5));
                    Step::Nothing
                }
                () = tokio::time::sleep_until(closing.unwrap_or(far)), if closing.is_some() => {
                    Step::Close(Close::new(CloseCode::GoingAway, GOING_AWAY))
                }
                () = tokio::time::sleep_until(init_deadline), if self.caller.is_none() => {
                    Step::Close(Close::new(CloseCode::InitTimeout, "Connection initialisation timeout (--client-timeout)"))
                }
                _ = ping.tick(), if self.sockets.keepalive.is_some() => self.keepalive(period),
            };
            match step {
                Step::Nothing => {}
                Step::Send(messages) => {
                    if let Err(step) = send(&self.conn, &mut sink, messages).await {
                        return self.finish(&mut sink, step).await;
                    }
                }
                step => return self.finish(&mut sink, step).await,
            }
        }
    }

    /// A frame from the peer (or its end).
    fn incoming(&mut self, frame: Option<Result<Message, axum::Error>>) -> Step {
        self.heard = Instant::now();
        match frame {
            None | Some(Ok(Message::Close(_))) => Step::Gone,
            Some(Err(e)) if too_big(&e) => Step::Close(Close::new(
                CloseCode::TooBig,
                "message too big (--max-body-bytes)",
            )),
            Some(Err(_)) => Step::Gone,
            Some(Ok(Message::Text(text))) => self.message(text.as_bytes()),
            Some(Ok(Message::Binary(bytes))) => self.message(&bytes),
            // tungstenite answers pings itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Step::Nothing,
        }
    }

    /// One graphql-transport-ws message from the peer.
    fn message(&mut self, raw: &[u8]) -> Step {
        match ClientMessage::parse(raw) {
            Err(close) => Step::Close(close),
            Ok(ClientMessage::ConnectionInit { payload }) => self.init(payload.as_ref()),
            Ok(ClientMessage::Ping { payload }) => {
                Step::Send(vec![ServerMessage::Pong { payload }.frame()])
            }
            Ok(ClientMessage::Pong { .. }) => Step::Nothing,
            Ok(ClientMessage::Subscribe { id, mut payload }) => {
                crate::door::wide::mark(&mut payload, raw, "payload.variables");
                self.subscribe(id, *payload)
            }
            Ok(ClientMessage::Complete { id }) => {
                // Dropping its sender stops the operation; nothing is sent back.
                self.operations.remove(&id);
                Step::Nothing
            }
        }
    }

    fn init(&mut self, payload: Option<&serde_json::Value>) -> Step {
        if self.caller.is_some() {
            return Step::Close(Close::new(
                CloseCode::TooManyInits,
                "Too many initialisation requests",
            ));
        }
        let caller = init_caller(payload);
        if let Err(refusal) = self.door.admit(&caller) {
            crate::door::log_refused(
                &refusal.clone().answer(),
                crate::door::Transport::WebSocket,
                &crate::error::RequestId::new(),
                std::time::Instant::now(),
            );
            let code = if refusal.status == axum::http::StatusCode::FORBIDDEN {
                CloseCode::Forbidden
            } else {
                CloseCode::Unauthorized
            };
            return Step::Close(Close::new(code, refusal.message));
        }
        let mut data = Data::default();
        data.insert(caller.clone());
        data.insert(self.conn.clone());
        self.session = Some(Arc::new(data));
        self.caller = Some(caller);
        Step::Send(vec![ServerMessage::ConnectionAck.frame()])
    }

    fn subscribe(&mut self, id: String, request: async_graphql::Request) -> Step {
        let Some(caller) = self.caller.clone() else {
            return Step::Close(Close::new(CloseCode::Unauthorized, "Unauthorized"));
        };
        if self.operations.contains_key(&id) {
            return Step::Close(Close::new(
                CloseCode::SubscriberExists,
                format!("Subscriber for {id} already exists"),
            ));
        }
        let answers = self.door.run_stream(request, caller, self.session.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        self.generation += 1;
        let generation = self.generation;
        self.operations.insert(id.clone(), (generation, stop));
        let (id_each, id_end) = (id.clone(), id);
        let events = answers
            .take_until(stopped)
            .map(move |answer| (id_each.clone(), generation, Some(answer)))
            .chain(stream::once(async move { (id_end, generation, None) }));
        self.running.push(events.boxed());
        Step::Nothing
    }

    /// What an operation gave, as the messages it makes (none for an operation
    /// the peer has completed, or replaced under the same id since).
    fn outgoing(&mut self, (id, generation, answer): Event) -> Step {
        if self.operations.get(&id).map(|(g, _)| *g) != Some(generation) {
            return Step::Nothing;
        }
        let message = match &answer {
            None => {
                self.operations.remove(&id);
                ServerMessage::Complete { id: &id }.frame()
            }
            Some(answer) if answer.status != Status::Executed => {
                self.operations.remove(&id);
                ServerMessage::Error {
                    id: &id,
                    payload: &answer.response.errors,
                }
                .frame()
            }
            Some(answer) => ServerMessage::Next {
                id: &id,
                payload: Payload {
                    data: &answer.response.data,
                    errors: &answer.response.errors,
                },
            }
            .frame(),
        };
        Step::Send(vec![message])
    }

    /// A keep-alive ping, or the close of a peer silent for three periods.
    fn keepalive(&self, period: Duration) -> Step {
        if self.heard.elapsed() > 3 * period {
            return Step::Close(Close::new(
                CloseCode::GoingAway,
                "no answer to keep-alive pings",
            ));
        }
        Step::Send(vec![Message::Ping(Bytes::from_static(b"ka"))])
    }

    async fn finish<S>(self, sink: &mut S, step: Step)
    where
        S: futures_util::Sink<Message> + Unpin,
    {
        match step {
            Step::Close(close) => self.close(sink, close).await,
            _ => self.log_closed("peer or protocol"),
        }
    }

    async fn close<S>(self, sink: &mut S, close: Close)
    where
        S: futures_util::Sink<Message> + Unpin,
    {
        // A peer that reads nothing would hold this forever.
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close.frame())).await;
        self.log_closed(&format!("{} {}", close.code.code(), close.reason));
    }

    fn log_closed(&self, reason: &str) {
        tracing::info!(
            connection = self.conn.id,
            subscriptions = self.conn.subscribed(),
            events = self.conn.delivered(),
            too_slow = self.conn.is_too_slow(),
            reason,
            "websocket closed"
        );
    }
}

/// Sends messages; a peer that reads too slowly is closed.
async fn send<S>(conn: &Connection, sink: &mut S, messages: Vec<Message>) -> Result<(), Step>
where
    S: futures_util::Sink<Message> + Unpin,
{
    for message in messages {
        tokio::select! {
            sent = sink.send(message) => if sent.is_err() { return Err(Step::Gone) },
            () = conn.dropped_for_slowness() => return Err(Step::Close(too_slow())),
        }
    }
    Ok(())
}

const GOING_AWAY: &str = "the server is shutting down";

fn too_slow() -> Close {
    Close::new(
        CloseCode::PolicyViolation,
        "events were not read fast enough (--subscription-buffer)",
    )
}

/// Whether a read failed on a message over the size bound: the one read error a
/// client causes on purpose, answered 1009 rather than by dropping the connection.
fn too_big(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// The token of a `connection_init` payload: `{"Authorization": "Bearer <token>"}`
/// (graphql-ws clients' `connectionParams`), also under `headers`.
fn init_caller(payload: Option<&serde_json::Value>) -> Caller {
    let find = |v: &serde_json::Value| {
        v.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.as_str())
            .and_then(Caller::bearer)
    };
    let token = payload.and_then(|p| find(p).or_else(|| p.get("headers").and_then(find)));
    Caller {
        token,
        ..Caller::default()
    }
}
