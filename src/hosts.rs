//! Which `Host` a request may name: the defence against DNS rebinding. A page on
//! `evil.example` whose name is re-pointed at 127.0.0.1 reaches a loopback server
//! with the browser's same-origin blessing, but its requests still say
//! `Host: evil.example`. So only names the server was told about are served, as
//! Jupyter, webpack-dev-server and Vite do.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::Response;

use crate::error::Code;
use crate::http::reply::refuse_request;

/// The names requests may carry in `Host` (or HTTP/2's `:authority`).
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    /// `*` given: no check (a proxy in front already checks Host).
    any: bool,
    /// Exact names, lowercase, without a trailing dot.
    names: Vec<String>,
    /// `.example.org` given: `example.org` and every name under it.
    suffixes: Vec<String>,
}

impl AllowedHosts {
    /// Always allowed: IP literals (a rebinding needs a name), `localhost` and
    /// `*.localhost` (which resolve to loopback by RFC 6761), and `own` (the
    /// machine's own name); then each of `extra`.
    pub fn new(extra: &[String], own: Option<String>) -> AllowedHosts {
        let mut hosts = AllowedHosts {
            any: false,
            names: own.into_iter().map(|n| normalise(&n)).collect(),
            suffixes: vec![".localhost".to_owned()],
        };
        for entry in extra.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if entry == "*" {
                hosts.any = true;
            } else if let Some(rest) = entry.strip_prefix('.') {
                hosts.suffixes.push(format!(".{}", normalise(rest)));
            } else {
                hosts.names.push(normalise(entry));
            }
        }
        hosts
    }

    /// Whether a request with this `Host` value may be served.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let Some(name) = host_name(host) else {
            return false;
        };
        if name.parse::<IpAddr>().is_ok() || name == "localhost" {
            return true;
        }
        self.names.contains(&name)
            || self
                .suffixes
                .iter()
                .any(|s| name.ends_with(s.as_str()) || name == s[1..])
    }
}

/// The name of a `Host` value, without its port, brackets or trailing dot, in
/// lowercase; `None` for a value no client sends (empty, userinfo, a path).
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    if host.is_empty() || host.contains(['@', '/', '\\', ' ']) {
        return None;
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        inside
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return None,
            None => host,
        }
    };
    let name = normalise(name);
    (!name.is_empty()).then_some(name)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Refuses a request whose `Host` (HTTP/2: `:authority`) names a host the server
/// was not told about, before anything else looks at it: see [`crate::hosts`].
pub async fn check_host(
    State(hosts): State<Arc<AllowedHosts>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request
        .headers()
        .get_all(header::HOST)
        .iter()
        .nth(1)
        .is_some()
    {
        return refuse_request(
            (request.method(), request.uri(), request.headers()),
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            "the request has more than one Host header",
        );
    }
    // The request target's authority, when it has one (absolute form, HTTP/2's
    // :authority), takes precedence over Host (RFC 9112 §3.2.2).
    let host = request.uri().authority().map(|a| a.as_str()).or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("\u{fffd}"))
    });
    match host {
        // HTTP/1.0 without Host: no browser sends that, so no rebinding either.
        None => next.run(request).await,
        Some(host) if hosts.allows(host) => next.run(request).await,
        Some(host) => {
            let shown: String = host.chars().take(100).collect();
            tracing::warn!(host = %shown.escape_debug(), path = %request.uri().path(), "refused a request for a host this server was not told about");
            refuse_request(
                (request.method(), request.uri(), request.headers()),
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                format!(
                    "requests for the host `{}` are refused (DNS rebinding protection): start the server with --allowed-host {} to serve it",
                    shown.escape_debug(),
                    shown.split(':').next().unwrap_or_default().escape_debug()
                ),
            )
        }
    }
}

/// This machine's host name, as `gethostname` gives it.
pub fn own_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .map(str::to_owned)
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_not_told_about_are_refused() {
        let h = AllowedHosts::new(
            &["api.example.org".into(), ".corp.example".into()],
            Some("build-1".into()),
        );
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "[::1]",
            "10.1.2.3:80",
            "localhost:8080",
            "LOCALHOST.",
            "ui.localhost:3000",
            "build-1:8080",
            "api.example.org",
            "API.example.org.:443",
            "corp.example",
            "x.corp.example:8080",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "localhost.evil.example",
            "example.org",
            "xcorp.example",
            "",
            "a@127.0.0.1",
            "127.0.0.1:80:80",
            "[::1",
            "[::1]x",
            "127.0.0.1:port",
            "evillocalhost",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        assert!(AllowedHosts::new(&["*".into()], None).allows("evil.example"));
    }
}
