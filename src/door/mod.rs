//! The one door every operation passes, whatever its transport (POST, GET,
//! WebSocket): the read and write token rules, the query limits, a request id, the
//! error codes, the response in query order, and one log line.

mod check;
mod expansion;
mod limits;
pub mod nesting;
mod nulls;
mod text;
mod typename;
mod weight;
pub mod wide;

use crate::graphql::subscription::{SelectionKey, SubscriptionCost};
use check::Checked;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Pos, Request, Response, ServerError, Value};
use axum::http::StatusCode;
use tracing::Instrument;

use crate::error::{Code, RequestId};
use crate::graphql::order::in_query_order;
use crate::graphql::{with_codes, ApiSchema};
use crate::store::tag::CancelOnDrop;

/// Whether two tokens are equal, in time that depends only on their lengths.
fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// How an operation arrived; GET never runs a mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Post,
    Get,
    WebSocket,
}

/// The bearer token an operation came with (the `Authorization` header, or the
/// WebSocket's `connection_init` payload).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub token: Option<String>,
}

/// The key of the request extension that carries the path of an integer too wide for
/// 64 bits, found in the raw text before it was parsed (see [`wide`]).
pub const WIDE_INTEGER: &str = "buildsetsGraphqlWideInteger";

/// What became of an operation, which each transport turns into its own status
/// (GraphQL over HTTP's for its media type, graphql-transport-ws's `next` or
/// `error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It ran: `data` is there, perhaps with field errors.
    Executed,
    /// A GraphQL request error: it did not run (parse, validation, variable
    /// coercion, a limit).
    RequestError,
    /// It could not finish now (the request timeout): no `data`, try again.
    Unavailable,
    /// Refused before GraphQL, with this HTTP status (tokens, methods).
    Http(StatusCode),
}

impl Status {
    /// For the log line.
    fn label(self) -> &'static str {
        match self {
            Status::Executed => "executed",
            Status::RequestError => "request error",
            Status::Unavailable => "unavailable",
            Status::Http(s) => s.canonical_reason().unwrap_or("refused"),
        }
    }

    /// A response's own: a response without data whose errors name no field
    /// did not run (async-graphql's parse and validation errors).
    fn of(response: &Response) -> Status {
        let not_run = response.data == Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        if not_run {
            Status::RequestError
        } else {
            Status::Executed
        }
    }
}

/// What the door answers: a GraphQL response and what became of the operation.
pub struct Answer {
    pub status: Status,
    pub response: Response,
}

/// A refusal before any operation runs.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// As a GraphQL response (no data, one coded error without a location).
    pub fn answer(self) -> Answer {
        error_answer(
            Status::Http(self.status),
            self.code,
            self.message,
            None,
            &[],
        )
    }
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    query: String,
    operation: Option<String>,
}

/// [`Key`] borrowed from a request: a lookup allocates nothing. It hashes as `Key`
/// does (`&str` hashes as `String`).
#[derive(Hash)]
struct KeyRef<'a> {
    query: &'a str,
    operation: Option<&'a str>,
}

impl quick_cache::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.query == key.query && self.operation == key.operation.as_deref()
    }
}

/// An entry weighs the bytes it keeps alive: its key's texts and its parsed
/// document, estimated from the document's nodes (a dense document parses to tens
/// of bytes per byte of text).
#[derive(Clone)]
struct TextWeight;

impl quick_cache::Weighter<Key, Arc<Checked>> for TextWeight {
    fn weight(&self, _: &Key, checked: &Arc<Checked>) -> u64 {
        checked.weight
    }
}

/// 32 MiB of parsed documents and their keys, whatever the mix: a few hundred
/// distinct queries of a web UI fit many times over; a client sending a new text
/// every time only churns it.
const KNOWN_WEIGHT: u64 = 32 << 20;

/// A document heavier than this is parsed for its request but not kept: one would
/// push out hundreds of the usual ones.
const KNOWN_LARGEST: u64 = KNOWN_WEIGHT / 64;

struct Inner {
    schema: ApiSchema,
    /// For the nulls of fields that errored.
    field_types: nulls::FieldTypes,
    /// Query texts already checked and parsed.
    known: quick_cache::sync::Cache<Key, Arc<Checked>, TextWeight>,
    /// For cancelling the statements of an abandoned operation.
    store: crate::store::Store,
    measure: limits::Measure,
    /// Every bound, as configured.
    bounds: crate::config::Limits,
    read_token: Option<String>,
    write_tokens: Vec<String>,
    request_timeout: Option<std::time::Duration>,
}

/// Cheap to clone: one per server, shared by every connection.
#[derive(Clone)]
pub struct Door(Arc<Inner>);

impl Door {
    pub fn new(
        schema: ApiSchema,
        tokens: crate::config::Tokens,
        limits: crate::config::Limits,
        request_timeout: Option<std::time::Duration>,
        store: crate::store::Store,
    ) -> Self {
        Door(Arc::new(Inner {
            field_types: nulls::FieldTypes::from_sdl(&schema.sdl()),
            known: quick_cache::sync::Cache::with_weighter(1024, KNOWN_WEIGHT, TextWeight),
            store,
            schema,
            measure: limits::Measure::new(limits.max_depth, limits.max_complexity),
            bounds: limits,
            read_token: tokens.read,
            write_tokens: tokens.write,
            request_timeout,
        }))
    }

    fn is_write_token(&self, token: &str) -> bool {
        // Every token is compared, each in constant time: the answer's timing tells
        // nothing of how much of a guess was right.
        self.0
            .write_tokens
            .iter()
            .fold(false, |found, w| found | same_token(w, token))
    }

    /// The read rule: with a read token configured, every operation needs it (or a
    /// write token).
    pub fn admit(&self, caller: &Caller) -> Result<(), Refusal> {
        let Some(read) = &self.0.read_token else {
            return Ok(());
        };
        match caller.token.as_deref() {
            Some(t) if same_token(read, t) | self.is_write_token(t) => Ok(()),
            Some(_) => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                "the bearer token is not valid for this server",
            )),
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                "this server needs `Authorization: Bearer <token>` for every request",
            )),
        }
    }

    /// The write rule: with write tokens configured, a mutation needs one of them.
    fn admit_write(&self, caller: &Caller) -> Result<(), Refusal> {
        if self.0.write_tokens.is_empty() {
            return Ok(());
        }
        match caller.token.as_deref() {
            Some(t) if self.is_write_token(t) => Ok(()),
            Some(_) => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                "the bearer token does not allow writes",
            )),
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                "writes need `Authorization: Bearer <token>`",
            )),
        }
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
        let (answer, statements) = self
            .tagged(async {
                match self.prepare(request, &caller, transport) {
                    Err(answer) => answer,
                    Ok(op) if op.kind == Some(OperationType::Subscription) => Refusal::new(
                        StatusCode::BAD_REQUEST,
                        Code::BadUserInput,
                        "subscriptions are served over the WebSocket at /graphql/ws (graphql-transport-ws)",
                    )
                    .answer(),
                    Ok(op) => self.execute(op, request_id.clone()).await,
                }
            })
            .instrument(span)
            .await;
        log_line(
            &request_id,
            operation.as_deref(),
            transport,
            &answer,
            started,
            Some(statements),
        );
        answer
    }

    /// Runs `operation` with its statements counted, its bytes bounded and its
    /// statements tagged for cancelling; the tag is made here, never taken from a
    /// client (who could name another's operation).
    async fn tagged<F: std::future::Future>(&self, operation: F) -> (F::Output, u64) {
        crate::store::tag::scope(
            &RequestId::new().0,
            self.0.bounds.max_response_bytes,
            operation,
        )
        .await
    }

    /// Runs one operation that arrived on a WebSocket: a subscription gives its
    /// events, anything else one response.
    pub fn run_stream(
        &self,
        request: Request,
        caller: Caller,
        session: Option<Arc<Data>>,
    ) -> BoxStream<'static, Answer> {
        let request_id = RequestId::new();
        let operation = request.operation_name.clone();
        let started = Instant::now();
        let door = self.clone();
        let key = SelectionKey::of(
            &request.query,
            request.operation_name.as_deref(),
            &request.variables,
        );
        match self.prepare(request, &caller, Transport::WebSocket) {
            Ok(op) if op.kind == Some(OperationType::Subscription) => {
                let shape = op.shape;
                let cost = SubscriptionCost(shape.checked.weight);
                let stream = self.0.schema.execute_stream_with_session_data(
                    op.request.data(request_id.clone()).data(key).data(cost),
                    session.unwrap_or_default(),
                );
                let mut first = true;
                stream
                    .then(move |response| {
                        let first = std::mem::take(&mut first);
                        let (door, shape) = (door.clone(), shape.clone());
                        let (request_id, operation) = (request_id.clone(), operation.clone());
                        async move {
                            let response = door.finish(response, &shape).await;
                            let answer = Answer {
                                status: Status::of(&response),
                                response,
                            };
                            // A refusal comes first and alone; events are not logged.
                            if first && answer.response.is_err() {
                                log_line(
                                    &request_id,
                                    operation.as_deref(),
                                    Transport::WebSocket,
                                    &answer,
                                    started,
                                    None,
                                );
                            }
                            answer
                        }
                    })
                    .boxed()
            }
            prepared => stream::once(async move {
                let (answer, statements) = door
                    .tagged(async {
                        match prepared {
                            Err(answer) => answer,
                            Ok(op) => door.execute(op, request_id.clone()).await,
                        }
                    })
                    .await;
                log_line(
                    &request_id,
                    operation.as_deref(),
                    Transport::WebSocket,
                    &answer,
                    started,
                    Some(statements),
                );
                answer
            })
            .boxed(),
        }
    }

    /// Every check before execution: tokens, raw-text bounds, parsing, value
    /// nesting, selection counts, and the write rule for mutations.
    // The refusal is the answer itself, built once and moved once; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    fn prepare(
        &self,
        mut request: Request,
        caller: &Caller,
        transport: Transport,
    ) -> Result<Prepared, Answer> {
        if let Err(refusal) = self.admit(caller) {
            return Err(refusal.answer());
        }
        if let Some(path) = request.extensions.get(WIDE_INTEGER) {
            let path = match path {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return Err(bad_input(
                &path,
                format!("`{path}` is an integer beyond 64 bits, which JSON numbers here cannot hold exactly; send it as a string"),
                None,
            ));
        }
        let key = KeyRef {
            query: &request.query,
            operation: request.operation_name.as_deref(),
        };
        let checked = match self.0.known.get(&key) {
            Some(checked) => checked,
            None => {
                let checked = Arc::new(check::check_text(
                    &self.0.bounds,
                    &request.query,
                    key.operation,
                )?);
                if checked.weight <= KNOWN_LARGEST {
                    self.0.known.insert(
                        Key {
                            query: request.query.clone(),
                            operation: request.operation_name.clone(),
                        },
                        checked.clone(),
                    );
                }
                checked
            }
        };
        let bounds = &self.0.bounds;
        let doc = &checked.doc;
        let kind = checked.kind;
        if let Some(missing) =
            missing_variable(doc, request.operation_name.as_deref(), &request.variables)
        {
            return Err(missing);
        }
        if let Some(field) =
            nesting::value_too_deep(doc, &request.variables, bounds.max_value_nesting)
        {
            return Err(bad_input(
                &field,
                format!(
                    "`{field}` nests deeper than {} levels of lists and objects (--max-value-nesting)",
                    bounds.max_value_nesting
                ),
                None,
            ));
        }
        if let Some((field, len, max)) = nesting::list_too_long(
            doc,
            &request.variables,
            // The longest list of objects (an `addBuildset` list, or `and` / `or`)
            // and of scalars (`in`, `builderids`) that could pass its own bound.
            bounds.max_input_list.max(bounds.max_where_conditions),
            bounds.max_input_list.max(bounds.max_where_values),
        ) {
            return Err(error_answer(
                Status::RequestError,
                Code::BadUserInput,
                format!("`{field}` holds a list of {len} items; at most {max} are allowed"),
                None,
                &[
                    ("field", Value::from(field.clone())),
                    ("limit", Value::from(max)),
                    ("found", Value::from(len)),
                ],
            ));
        }
        if kind == Some(OperationType::Mutation) {
            if transport == Transport::Get {
                return Err(Refusal::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    Code::BadUserInput,
                    "mutations must be sent with POST",
                )
                .answer());
            }
            if let Err(refusal) = self.admit_write(caller) {
                return Err(refusal.answer());
            }
        }
        request.set_parsed_query(doc.clone());
        let shape = Arc::new(Shape {
            checked,
            operation: request.operation_name.clone(),
            variables: request.variables.clone(),
        });
        Ok(Prepared {
            request,
            shape,
            kind,
        })
    }

    async fn execute(&self, op: Prepared, request_id: RequestId) -> Answer {
        // Dropped before it finishes (the client went away, or the timeout below),
        // the operation's statements still running in the database are cancelled.
        let guard = CancelOnDrop::current(&self.0.store);
        let execution = self.0.schema.execute(op.request.data(request_id));
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
        let response = self.finish(response, &op.shape).await;
        Answer {
            status: Status::of(&response),
            response,
        }
    }

    /// A response as the client gets it: a limit refusal naming the limit and the
    /// value found, a code on every error, fields in the order of the query.
    async fn finish(&self, response: Response, shape: &Shape) -> Response {
        let response = self.0.measure.explain(response, || shape.twin()).await;
        let mut response = with_codes(response);
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
        in_query_order(
            &mut response.data,
            &shape.checked.doc,
            shape.operation.as_deref(),
        );
        response
    }
}

/// A non-null variable without a value nor a default: GraphQL's variable coercion
/// fails before execution (async-graphql finds it only when a field reads it, and
/// reports it as that field's error).
fn missing_variable(
    doc: &async_graphql::parser::types::ExecutableDocument,
    operation: Option<&str>,
    variables: &async_graphql::Variables,
) -> Option<Answer> {
    let op = crate::graphql::order::selected_operation(doc, operation)?;
    let missing = op.variable_definitions.iter().find(|v| {
        let v = &v.node;
        !v.var_type.node.nullable
            && v.default_value.is_none()
            && matches!(variables.get(&v.name.node), None | Some(Value::Null))
    })?;
    let name = missing.node.name.node.as_str();
    Some(bad_input(
        name,
        format!(
            "Variable `${name}` of type `{}` must be given a value",
            missing.node.var_type.node
        ),
        Some(missing.pos),
    ))
}

/// What a response is shaped by: the parsed document, the operation and variables.
struct Shape {
    checked: Arc<Checked>,
    operation: Option<String>,
    variables: async_graphql::Variables,
}

impl Shape {
    /// The request again, for the measuring twin; it runs the parsed document, the
    /// text is not read again.
    fn twin(&self) -> Request {
        let mut again = Request::new(String::new()).variables(self.variables.clone());
        again.operation_name = self.operation.clone();
        again.set_parsed_query(self.checked.doc.clone());
        again
    }
}

/// An operation that passed every check, parsed.
struct Prepared {
    request: Request,
    shape: Arc<Shape>,
    kind: Option<OperationType>,
}

/// One line per operation: failures at info (seen by default), successes at debug
/// (`RUST_LOG=debug`), so that a busy server does not spend its time writing access
/// logs.
fn log_line(
    request_id: &RequestId,
    operation: Option<&str>,
    transport: Transport,
    answer: &Answer,
    started: Instant,
    statements: Option<u64>,
) {
    let took = started.elapsed();
    let outcome = answer
        .response
        .errors
        .first()
        .and_then(|e| e.extensions.as_ref())
        .and_then(|e| e.get("code"))
        .map_or_else(
            || "OK".to_owned(),
            |c| c.to_string().trim_matches('"').to_owned(),
        );
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                request_id = %request_id.0,
                operation = operation.unwrap_or("-"),
                ?transport,
                status = answer.status.label(),
                outcome,
                duration_ms = took.as_secs_f64() * 1000.0,
                statements,
                "request"
            )
        };
    }
    let transport_label = match transport {
        Transport::Post => "post",
        Transport::Get => "get",
        Transport::WebSocket => "websocket",
    };
    crate::metrics::record_request(operation, transport_label, &outcome, took, statements);
    if outcome == "OK" {
        line!(debug);
    } else {
        line!(info);
    }
}

/// An answer of one error with `code` and any `extra` extensions.
fn error_answer(
    status: Status,
    code: Code,
    message: impl Into<String>,
    pos: Option<Pos>,
    extra: &[(&str, Value)],
) -> Answer {
    let mut err = ServerError::new(message, pos);
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", Value::from(code.as_str()));
    for (key, value) in extra {
        ext.set(*key, value.clone());
    }
    Answer {
        status,
        response: Response::from_errors(vec![err]),
    }
}

fn bad_input(field: &str, message: impl Into<String>, pos: Option<Pos>) -> Answer {
    error_answer(
        Status::RequestError,
        Code::BadUserInput,
        message,
        pos,
        &[("field", Value::from(field))],
    )
}
