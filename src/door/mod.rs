//! The one door every operation passes, whatever its transport (POST, GET,
//! WebSocket): the read and write token rules, the query limits, a request id, the
//! error codes, the response in query order, and one log line.

mod answer;
mod cache;
mod check;
mod expansion;
mod introspection;
mod limits;
pub mod nesting;
mod nulls;
mod persisted;
mod prepare;
mod text;
mod tokens;
mod typename;
mod weight;
pub mod wide;

use std::sync::Arc;
use std::time::Instant;

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Request, Response, Value};
use axum::http::StatusCode;
use tracing::Instrument;

use answer::{error_answer, log_line};
pub use answer::{
    Answer, Caller, Refusal, Status, Transport, READ_AFTER, READ_FROM, WRITE_POSITION,
};
pub use persisted::{Documents, DOCUMENT_ID};
use prepare::{Prepared, Shape};

use crate::error::{Code, RequestId};
use crate::graphql::order::in_query_order;
use crate::graphql::subscription::{SelectionKey, SubscriptionCost};
use crate::graphql::{with_codes, ApiSchema};
use crate::store::tag::{CancelOnDrop, Operation as Work};

/// Logs and counts a request refused before [`Door::run`] saw it (its Host, its
/// body, its media type, its token, a WebSocket's `connection_init`).
pub fn log_refused(
    answer: &Answer,
    transport: Transport,
    request_id: &RequestId,
    started: Instant,
) {
    log_line(request_id, None, transport, answer, started, None);
}

/// The key of the request extension that carries the path of an integer too wide for
/// 64 bits, found in the raw text before it was parsed (see [`wide`]).
pub const WIDE_INTEGER: &str = "buildsetsGraphqlWideInteger";

struct Inner {
    schema: ApiSchema,
    /// For the nulls of fields that errored.
    field_types: nulls::FieldTypes,
    known: cache::Known,
    /// Persisted queries and trusted documents.
    documents: Documents,
    /// For cancelling the statements of an abandoned operation.
    store: crate::store::Store,
    measure: limits::Measure,
    /// Every bound, as configured.
    bounds: crate::config::Limits,
    keys: tokens::Keys,
    request_timeout: Option<std::time::Duration>,
}

/// Cheap to clone: one per server, shared by every connection.
#[derive(Clone)]
pub struct Door(Arc<Inner>);

impl Door {
    pub fn new(
        schema: ApiSchema,
        documents: Documents,
        tokens: crate::config::Tokens,
        limits: crate::config::Limits,
        request_timeout: Option<std::time::Duration>,
        store: crate::store::Store,
    ) -> Self {
        Door(Arc::new(Inner {
            field_types: nulls::FieldTypes::from_sdl(&schema.sdl()),
            known: cache::Known::new(),
            documents,
            store,
            schema,
            measure: limits::Measure::new(limits.max_depth, limits.max_complexity),
            bounds: limits,
            keys: tokens::Keys::new(tokens),
            request_timeout,
        }))
    }

    /// The read rule: with a read token configured, every operation needs it (or a
    /// write token).
    pub fn admit(&self, caller: &Caller) -> Result<(), Refusal> {
        self.0.keys.admit(caller)
    }

    /// Runs one operation through every rule; `request_id` names it in the log
    /// and in INTERNAL errors.
    pub async fn run(
        &self,
        request: Request,
        caller: Caller,
        transport: Transport,
        request_id: RequestId,
    ) -> Answer {
        let operation = request.operation_name.clone();
        let span = tracing::info_span!("graphql", request_id = %request_id.0);
        let started = Instant::now();
        let work = self.work();
        work.read_from(caller.read_from);
        let answer = async {
            match self.prepare(request, &caller, transport) {
                Err(answer) => answer,
                Ok(op) if op.kind == Some(OperationType::Subscription) => Refusal::new(
                    StatusCode::BAD_REQUEST,
                    Code::BadRequest,
                    "subscriptions are served over the WebSocket at /graphql/ws (graphql-transport-ws)",
                )
                .answer(),
                Ok(op) => self.execute(op, request_id.clone(), &work).await,
            }
        }
        .instrument(span)
        .await;
        log_line(
            &request_id,
            operation.as_deref(),
            transport,
            &answer,
            started,
            Some(work.statements()),
        );
        answer
    }

    /// The store's side of a new operation: its statements counted and tagged for
    /// cancelling (the tag is the store's, never taken from a client, who could name
    /// another's operation), its answer's bytes within `--max-response-bytes`. It
    /// goes in the request's data, and resolvers pass it to every store call.
    fn work(&self) -> Arc<Work> {
        Work::new(self.0.bounds.max_response_bytes)
    }

    /// Runs one operation that arrived on a WebSocket: a subscription gives its
    /// events, anything else one answer.
    pub fn run_stream(
        &self,
        request: Request,
        caller: Caller,
        session: Option<Arc<Data>>,
    ) -> BoxStream<'static, Answer> {
        let request_id = RequestId::new();
        let operation = request.operation_name.clone();
        let started = Instant::now();
        let key = SelectionKey::of(
            &request.query,
            request.operation_name.as_deref(),
            &request.variables,
        );
        match self.prepare(request, &caller, Transport::WebSocket) {
            Ok(op) if op.kind == Some(OperationType::Subscription) => {
                let logged = Logged {
                    request_id: request_id.clone(),
                    operation,
                    started,
                };
                self.events(op, request_id, key, session, logged)
            }
            prepared => {
                let door = self.clone();
                stream::once(async move {
                    let work = door.work();
                    let answer = match prepared {
                        Err(answer) => answer,
                        Ok(op) => door.execute(op, request_id.clone(), &work).await,
                    };
                    let how = Transport::WebSocket;
                    log_line(
                        &request_id,
                        operation.as_deref(),
                        how,
                        &answer,
                        started,
                        Some(work.statements()),
                    );
                    answer
                })
                .boxed()
            }
        }
    }

    /// A subscription's answers, one per event; a refusal comes first and alone, and
    /// is logged (events are not).
    fn events(
        &self,
        op: Prepared,
        request_id: RequestId,
        key: SelectionKey,
        session: Option<Arc<Data>>,
        logged: Logged,
    ) -> BoxStream<'static, Answer> {
        let shape = op.shape;
        let cost = SubscriptionCost(shape.checked.weight);
        crate::metrics::subscription_started();
        let responses = self.0.schema.execute_stream_with_session_data(
            op.request
                .data(request_id)
                .data(key)
                .data(cost)
                // One for the subscription; its budget starts again for each event.
                .data(self.work()),
            session.unwrap_or_default(),
        );
        let door = self.clone();
        let mut logged = Some(logged);
        responses
            .then(move |response| {
                let (door, shape, logged) = (door.clone(), shape.clone(), logged.take());
                async move {
                    let response = door.finish(response, &shape).await;
                    let answer = Answer {
                        status: Status::of(&response),
                        response,
                    };
                    if answer.response.is_ok() {
                        crate::metrics::subscription_event();
                    }
                    if let Some(l) = logged.filter(|_| answer.response.is_err()) {
                        let how = Transport::WebSocket;
                        log_line(
                            &l.request_id,
                            l.operation.as_deref(),
                            how,
                            &answer,
                            l.started,
                            None,
                        );
                    }
                    answer
                }
            })
            .boxed()
    }

    async fn execute(&self, op: Prepared, request_id: RequestId, work: &Arc<Work>) -> Answer {
        if op.kind == Some(OperationType::Mutation) {
            // A mutation and its answer see its own writes.
            work.read_from(crate::store::replica::ReadFrom::Primary);
        }
        // Dropped before it finishes (the client went away, or the timeout below),
        // the operation's statements still running in the database are cancelled.
        let guard = CancelOnDrop::new(&self.0.store, work);
        let execution = self
            .0
            .schema
            .execute(op.request.data(request_id).data(work.clone()));
        let response = match self.0.request_timeout {
            None => execution.await,
            // Dropping the execution drops its statements and rolls back its
            // transaction: nothing is half-written.
            Some(t) => match tokio::time::timeout(t, execution).await {
                Ok(r) => r,
                Err(_) => {
                    // `guard` cancels what is still running as it drops.
                    return error_answer(
                        Status::Unavailable,
                        Code::Unavailable,
                        format!(
                            "the operation did not finish within {} s (--request-timeout); the database may be slow or unreachable",
                            t.as_secs()
                        ),
                        None,
                        &[("limit", Value::from(t.as_secs()))],
                    );
                }
            },
        };
        guard.disarm();
        let mut response = self.finish(response, &op.shape).await;
        if let Some(at) = work.wrote() {
            if let Ok(v) = axum::http::HeaderValue::from_str(&at.to_string()) {
                response.http_headers.insert(WRITE_POSITION, v);
            }
        }
        Answer {
            status: Status::of(&response),
            response,
        }
    }

    /// A response as the client gets it: a limit refusal naming the limit and the
    /// value found, a code on every error, fields in the order of the query.
    async fn finish(&self, response: Response, shape: &Shape) -> Response {
        let response = self.0.measure.explain(response, || shape.twin()).await;
        let doc = &shape.checked.doc;
        let mut response = with_codes(response, &|pos| nesting::argument_uses_variable(doc, pos));
        // async-graphql's validation can report one mistake twice (`subscription {
        // __typename }` meets two rules).
        response
            .errors
            .dedup_by(|a, b| a.message == b.message && a.locations == b.locations);
        for err in &mut response.errors {
            let ext = err.extensions.get_or_insert_with(Default::default);
            let client_error = ext.get("code") == Some(&Value::from(Code::BadUserInput.as_str()));
            if client_error && ext.get("field").is_none() {
                if let Some(field) = err
                    .locations
                    .first()
                    .and_then(|pos| nesting::argument_at(&shape.checked.doc, *pos))
                {
                    ext.set("field", Value::from(field));
                }
            }
        }
        if response.errors.iter().any(|e| !e.path.is_empty()) {
            nulls::null_errored_fields(
                &mut response.data,
                &response.errors,
                &shape.checked.doc,
                shape.operation.as_deref(),
                &self.0.field_types,
            );
        }
        if shape.checked.kept {
            typename::strip(&mut response.data);
        }
        introspection::correct(
            &mut response.data,
            &shape.checked.doc,
            shape.operation.as_deref(),
        );
        in_query_order(
            &mut response.data,
            &shape.checked.doc,
            shape.operation.as_deref(),
        );
        response
    }
}

/// What the log line of a subscription's refusal names.
struct Logged {
    request_id: RequestId,
    operation: Option<String>,
    started: Instant,
}
