//! Which document a request runs: its text, a hash it registered before (Apollo's
//! automatic persisted queries), or an id of `--trusted-documents`, which then runs
//! only what is listed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Value};
use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use super::answer::error_answer;
use super::{Answer, Refusal, Status};
use crate::error::Code;

/// The request extension a transport puts a top-level `documentId` (GraphQL over
/// HTTP's persisted documents; Relay's `doc_id`) under, so that the door sees every
/// way of naming a document in one place.
pub const DOCUMENT_ID: &str = "buildsetsGraphqlDocumentId";

/// The documents a server knows by id.
pub struct Documents {
    /// Automatic persisted queries, by their SHA-256 (lower-case hex), bounded in
    /// bytes; `None` when turned off.
    registered: Option<quick_cache::sync::Cache<String, Arc<str>, TextBytes>>,
    /// `--trusted-documents`: when given, only these run.
    trusted: Option<Trusted>,
}

#[derive(Clone)]
struct TextBytes;

impl quick_cache::Weighter<String, Arc<str>> for TextBytes {
    fn weight(&self, key: &String, text: &Arc<str>) -> u64 {
        (key.len() + text.len()) as u64
    }
}

struct Trusted {
    by_id: HashMap<String, Arc<str>>,
    texts: HashSet<Arc<str>>,
}

/// What the door must still check of a document once it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Any operation of it may run.
    Any,
    /// Trusted documents are on and this text is not one: it may only introspect.
    IntrospectionOnly,
}

impl Documents {
    /// `registered_bytes` bounds the automatic persisted queries (0 turns them off);
    /// `trusted` names manifest files (none: any document runs).
    pub fn new(registered_bytes: u64, trusted: &[PathBuf]) -> Result<Documents, String> {
        let trusted = if trusted.is_empty() {
            None
        } else {
            let mut all = Trusted {
                by_id: HashMap::new(),
                texts: HashSet::new(),
            };
            for path in trusted {
                for (id, text) in read_manifest(path)? {
                    let text: Arc<str> = text.into();
                    all.texts.insert(text.clone());
                    all.by_id.insert(id, text);
                }
            }
            Some(all)
        };
        // Trusted documents replace registration: a client could otherwise register
        // any text and run it by its hash.
        let registered = (registered_bytes > 0 && trusted.is_none())
            .then(|| quick_cache::sync::Cache::with_weighter(1024, registered_bytes, TextBytes));
        Ok(Documents {
            registered,
            trusted,
        })
    }

    /// Adds documents the server itself serves a client for (the board's), trusted
    /// beside the manifests' when trusted documents are on; nothing changes otherwise.
    pub fn trusting_also(mut self, documents: impl IntoIterator<Item = (String, String)>) -> Self {
        if let Some(trusted) = &mut self.trusted {
            for (id, text) in documents {
                let text: Arc<str> = text.into();
                trusted.texts.insert(text.clone());
                trusted.by_id.insert(id, text);
            }
        }
        self
    }

    /// How many trusted documents are listed (`None`: any document runs).
    pub fn trusted_count(&self) -> Option<usize> {
        self.trusted.as_ref().map(|t| t.by_id.len())
    }

    /// Puts the text of the document the request names into `request.query`, or
    /// answers why it cannot run.
    // The refusal is the answer itself, built once and moved once; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    pub fn resolve(&self, request: &mut Request) -> Result<Trust, Answer> {
        let named = named_document(request)?;
        let has_text = !request.query.trim().is_empty();
        if let Some(trusted) = &self.trusted {
            let listed = named.as_deref().and_then(|id| lookup(&trusted.by_id, id));
            return match (&named, listed) {
                (Some(_), Some(text)) => {
                    if has_text && *request.query != **text {
                        return Err(bad_request(
                            "the query's text is not the trusted document its id names: send the id alone",
                        ));
                    }
                    request.query = text.to_string();
                    Ok(Trust::Any)
                }
                (Some(id), None) if !has_text => Err(Refusal::new(
                    StatusCode::NOT_FOUND,
                    Code::PersistedQueryNotFound,
                    format!(
                        "no trusted document has the id `{}` (--trusted-documents)",
                        shown(id)
                    ),
                )
                .answer()),
                (None, None) if !has_text => Err(no_query()),
                // Judged by its text, also when it comes with an id the list does not
                // hold (an automatic-persisted-query client's retry).
                _ if trusted.texts.contains(request.query.as_str()) => Ok(Trust::Any),
                _ => Ok(Trust::IntrospectionOnly),
            };
        }
        match (named, has_text) {
            (None, true) => Ok(Trust::Any),
            (None, false) => Err(no_query()),
            (Some(hash), has_text) => {
                let Some(registered) = &self.registered else {
                    if has_text {
                        return Ok(Trust::Any);
                    }
                    return Err(error_answer(
                        Status::RequestError,
                        Code::PersistedQueryNotSupported,
                        "PersistedQueryNotSupported",
                        None,
                        &[],
                    ));
                };
                let hash = hash
                    .strip_prefix("sha256:")
                    .unwrap_or(&hash)
                    .to_ascii_lowercase();
                if has_text {
                    if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
                        return Err(bad_request("provided sha does not match query"));
                    }
                    registered.insert(hash, request.query.as_str().into());
                    return Ok(Trust::Any);
                }
                match registered.get(&hash) {
                    Some(text) => {
                        request.query = text.to_string();
                        Ok(Trust::Any)
                    }
                    // Apollo's clients look for this message or this code, then send
                    // the text with its hash.
                    None => Err(error_answer(
                        Status::RequestError,
                        Code::PersistedQueryNotFound,
                        "PersistedQueryNotFound",
                        None,
                        &[],
                    )),
                }
            }
        }
    }
}

/// Whether the selected operation only introspects (`__schema`, `__type`,
/// `__typename`): what a trusted-documents server still answers to any client, so
/// that the playground's Docs and code generators work.
pub fn only_introspects(doc: &ExecutableDocument, operation: Option<&str>) -> bool {
    crate::graphql::order::selected_operation(doc, operation).is_some_and(|op| {
        super::nesting::fields_of(doc, &op.selection_set.node)
            .iter()
            .all(|f| f.name.node.starts_with("__"))
    })
}

/// The refusal of an operation that is not a trusted document.
pub fn not_in_list() -> Answer {
    Refusal::new(
        StatusCode::FORBIDDEN,
        Code::PersistedQueryNotInList,
        "this server runs only its trusted documents (--trusted-documents), and this operation is not one of them: send a listed document's id, or its exact text",
    )
    .answer()
}

fn no_query() -> Answer {
    bad_request("the request has no `query`, and names no persisted document (`extensions.persistedQuery` or `documentId`)")
}

/// A request that does not say which document to run, or says it two ways: 400
/// whatever the media type, as for any request that is not a GraphQL request.
fn bad_request(message: &str) -> Answer {
    Refusal::new(StatusCode::BAD_REQUEST, Code::BadRequest, message).answer()
}

/// The id a request names its document by, if any: `documentId` (or Relay's
/// `doc_id`), or Apollo's `extensions.persistedQuery`.
#[allow(clippy::result_large_err)]
fn named_document(request: &mut Request) -> Result<Option<String>, Answer> {
    let document_id = match request.extensions.remove(DOCUMENT_ID) {
        Some(Value::String(id)) => Some(id),
        Some(_) => return Err(bad_request("`documentId` must be a string")),
        None => None,
    };
    let persisted = match request.extensions.get("persistedQuery") {
        None | Some(Value::Null) => None,
        Some(Value::Object(pq)) => {
            match pq.get("version") {
                Some(Value::Number(n)) if n.as_i64() == Some(1) => {}
                _ => {
                    return Err(bad_request(
                        "Unsupported persisted query version: send `\"version\": 1`",
                    ))
                }
            }
            match pq.get("sha256Hash") {
                Some(Value::String(hash)) => Some(hash.clone()),
                _ => {
                    return Err(bad_request(
                        "`extensions.persistedQuery` needs a `sha256Hash` string",
                    ))
                }
            }
        }
        Some(_) => return Err(bad_request("`extensions.persistedQuery` must be an object")),
    };
    match (document_id, persisted) {
        (Some(a), Some(b)) if a != b => Err(bad_request(
            "the request names two documents (`documentId` and `extensions.persistedQuery`): send one",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn lookup<'a>(by_id: &'a HashMap<String, Arc<str>>, id: &str) -> Option<&'a Arc<str>> {
    by_id
        .get(id)
        .or_else(|| by_id.get(id.strip_prefix("sha256:")?))
        .or_else(|| by_id.get(&format!("sha256:{id}")))
}

/// An id as shown in a message: a client's text, bounded.
fn shown(id: &str) -> String {
    id.chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

/// The (id, text) pairs of a manifest: Apollo's persisted query manifest
/// (`{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}]}`)
/// or Relay's `persisted_queries.json` (`{"<id>": "<text>"}`).
fn read_manifest(path: &Path) -> Result<Vec<(String, String)>, String> {
    let flag = "--trusted-documents";
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!("{flag} {}: not JSON ({e}); give Apollo's persisted query manifest or Relay's persisted_queries.json", path.display())
    })?;
    let bad = |what: &str| {
        format!(
            "{flag} {}: {what}; give Apollo's persisted query manifest ({{\"format\": \"apollo-persisted-query-manifest\", \"version\": 1, \"operations\": [{{\"id\", \"body\", …}}]}}) or Relay's persisted_queries.json ({{\"<id>\": \"<document>\"}})",
            path.display()
        )
    };
    let Some(object) = json.as_object() else {
        return Err(bad("not a JSON object"));
    };
    let pairs: Vec<(String, String)> = match object.get("format") {
        Some(serde_json::Value::String(f)) if f == "apollo-persisted-query-manifest" => {
            let operations = object
                .get("operations")
                .and_then(|o| o.as_array())
                .ok_or_else(|| bad("its `operations` is not a list"))?;
            operations
                .iter()
                .enumerate()
                .map(|(i, op)| {
                    let field = |k: &str| op.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                    match (field("id"), field("body")) {
                        (Some(id), Some(body)) => Ok((id, body)),
                        _ => Err(bad(&format!(
                            "operation {i} has no `id` and `body` strings"
                        ))),
                    }
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(bad("its `format` is not apollo-persisted-query-manifest")),
        None => object
            .iter()
            .map(|(id, body)| match body.as_str() {
                Some(body) => Ok((id.clone(), body.to_owned())),
                None => Err(bad(&format!("the entry `{id}` is not a string"))),
            })
            .collect::<Result<_, _>>()?,
    };
    if pairs.is_empty() {
        return Err(bad("it lists no document"));
    }
    for (id, body) in &pairs {
        if let Err(e) = async_graphql::parser::parse_query(body) {
            return Err(format!(
                "{flag} {}: the document `{id}` is not GraphQL: {}",
                path.display(),
                super::check::syntax_error(&e, body)
            ));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    fn request(query: &str, extensions: serde_json::Value) -> Request {
        serde_json::from_value(serde_json::json!({"query": query, "extensions": extensions}))
            .expect("request")
    }

    fn code(answer: Answer) -> String {
        answer.response.errors[0]
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn automatic_persisted_queries_register_then_run_by_hash() {
        let docs = Documents::new(1 << 20, &[]).expect("documents");
        let text = "{ builders { name } }";
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        let pq = serde_json::json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
        let mut r = request("", pq.clone());
        assert_eq!(
            code(docs.resolve(&mut r).unwrap_err()),
            "\"PERSISTED_QUERY_NOT_FOUND\""
        );
        let mut wrong = request("{ nope }", pq.clone());
        assert_eq!(
            code(docs.resolve(&mut wrong).unwrap_err()),
            "\"BAD_REQUEST\""
        );
        let mut r = request(text, pq.clone());
        assert_eq!(docs.resolve(&mut r).ok(), Some(Trust::Any));
        let mut r = request("", pq);
        assert_eq!(docs.resolve(&mut r).ok(), Some(Trust::Any));
        assert_eq!(r.query, text);
    }

    #[test]
    fn trusted_documents_run_by_id_or_text_and_nothing_else() {
        let apollo = manifest(
            r#"{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"abc","name":"B","type":"query","body":"query B { builders { name } }"}]}"#,
        );
        let relay = manifest(r#"{"r1": "query R { buildsets { totalCount } }"}"#);
        let docs = Documents::new(1 << 20, &[apollo.path().into(), relay.path().into()])
            .expect("documents");
        assert_eq!(docs.trusted_count(), Some(2));
        let mut r = request(
            "",
            serde_json::json!({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}),
        );
        assert_eq!(docs.resolve(&mut r).ok(), Some(Trust::Any));
        assert_eq!(r.query, "query B { builders { name } }");
        let mut r = request("", serde_json::json!({DOCUMENT_ID: "r1"}));
        assert_eq!(docs.resolve(&mut r).ok(), Some(Trust::Any));
        let mut r = request(
            "query R { buildsets { totalCount } }",
            serde_json::json!({}),
        );
        assert_eq!(docs.resolve(&mut r).ok(), Some(Trust::Any));
        let mut r = request("{ buildsets { totalCount } }", serde_json::json!({}));
        assert_eq!(docs.resolve(&mut r).ok(), Some(Trust::IntrospectionOnly));
        let mut r = request("", serde_json::json!({DOCUMENT_ID: "nope"}));
        assert_eq!(
            code(docs.resolve(&mut r).unwrap_err()),
            "\"PERSISTED_QUERY_NOT_FOUND\""
        );
    }

    #[test]
    fn manifests_that_are_not_manifests_are_refused_at_start() {
        for bad in [
            "[]",
            "{}",
            r#"{"format":"apollo-persisted-query-manifest","operations":[{"id":"a"}]}"#,
            r#"{"a": 1}"#,
            r#"{"a": "query {"}"#,
            "not json",
        ] {
            let f = manifest(bad);
            let err = Documents::new(0, &[f.path().into()]).err().expect(bad);
            assert!(err.starts_with("--trusted-documents "), "{bad}: {err}");
        }
    }

    #[test]
    fn introspection_only_is_told_apart() {
        let yes = async_graphql::parser::parse_query(
            "query { __schema { types { name } } ...F } fragment F on Query { __typename }",
        )
        .expect("parses");
        assert!(only_introspects(&yes, None));
        let no =
            async_graphql::parser::parse_query("{ __typename ... on Query { builders { name } } }")
                .expect("parses");
        assert!(!only_introspects(&no, None));
    }
}
