//! Which browser pages may call the API. A page on another site can make the user's
//! browser send requests to `http://127.0.0.1:8080` (a form posting a multipart
//! upload, a WebSocket, which CORS never covers): with auth off on loopback, that page
//! could load firmware and drive sessions. So a request that carries an `Origin`
//! header (browsers add it to every cross-origin request, every POST and every
//! WebSocket) is served only when that origin is the server's own (the GraphiQL page
//! it serves) or one of `--cors-origin`; anything else gets 403 FORBIDDEN_ORIGIN before
//! it is parsed. Clients that are not browsers (the CLI, the VS Code extension's Node
//! host, gdb) send no `Origin` and are not affected.
//!
//! For the allowed extra origins the CORS headers (preflight included) come from
//! tower-http's `CorsLayer`; with none configured there are no CORS headers at all.
//!
//! DNS rebinding gets around an origin check: a page at `http://evil.example:8080`
//! whose name is made to resolve to 127.0.0.1 is, to the browser, of the same origin
//! as the server. So a loopback server with auth off (where a request needs nothing
//! else) answers only requests whose `Host` is a loopback name (`localhost`,
//! `*.localhost`, a loopback address), and refuses the rest with 403 FORBIDDEN_HOST.
//! With auth on, a rebound page has no key, and proxies may use any name.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::http::request_error;

/// The origins allowed besides the server's own.
pub struct Origins {
    any: bool,
    allowed: Vec<String>,
    /// Only loopback `Host` names are answered (a loopback server with auth off).
    loopback_hosts: bool,
}

impl Origins {
    /// From `--cors-origin` values, already checked by [`is_origin`]; `loopback_hosts`
    /// for a loopback listener with auth off.
    pub fn new(configured: &[String], loopback_hosts: bool) -> Arc<Self> {
        Arc::new(Self {
            loopback_hosts,
            any: configured.iter().any(|origin| origin == "*"),
            allowed: configured
                .iter()
                .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        })
    }

    /// The CORS headers for the configured origins; `None` when there are none.
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        if self.allowed.is_empty() {
            return None;
        }
        let allow = if self.any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.allowed
                    .iter()
                    .filter_map(|origin| HeaderValue::from_str(origin).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    super::request_id::HEADER,
                ])
                .expose_headers([super::request_id::HEADER]),
        )
    }

    /// Whether a request with these headers may be served.
    fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.any || self.allowed.contains(&origin) {
            return true;
        }
        // The server's own pages: the origin names the host the request was sent to.
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }
}

/// Whether `origin` is something a browser could send: `scheme://host[:port]`, or `*`.
pub fn is_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let authority_ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
    scheme_ok && authority_ok
}

/// Whether a `Host` value names this machine's loopback: `localhost`, a name under
/// `.localhost`, or a loopback address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, _)) => address,
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Middleware: refuses a browser request from an origin that is not allowed, and on
/// a loopback server with auth off a request under a name that is not loopback.
pub async fn guard(State(origins): State<Arc<Origins>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if origins.loopback_hosts
        && let Some(name) = host.filter(|host| !is_loopback_host(host))
    {
        tracing::warn!(host = %name, "request under a name that is not loopback refused");
        return request_error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN_HOST",
            format!(
                "this server listens on loopback with auth off and answers only to loopback \
                 names (localhost, 127.0.0.1), not {name:?}: a web page can make its own \
                 name resolve here. To serve other names, run it with --auth required"
            ),
        );
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return next.run(request).await;
    };
    match origin.to_str() {
        Ok(origin) if origins.allows(origin, host) => next.run(request).await,
        _ => {
            let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            tracing::warn!(origin = %shown, "request from a browser origin that is not allowed refused");
            request_error(
                StatusCode::FORBIDDEN,
                "FORBIDDEN_ORIGIN",
                format!(
                    "requests from the web origin {shown:?} are not allowed; the server's \
                     operator can allow it with --cors-origin"
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origin_and_configured_ones_are_allowed_others_not() {
        let none = Origins::new(&[], false);
        assert!(none.allows("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(none.allows("https://LAB.example", Some("lab.example")));
        assert!(!none.allows("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!none.allows("null", Some("127.0.0.1:8080")));
        assert!(!none.allows("http://127.0.0.1:8080", None));
        assert!(none.cors_layer().is_none());

        let some = Origins::new(&["https://dash.example/".into()], false);
        assert!(some.allows("https://dash.example", Some("127.0.0.1:8080")));
        assert!(!some.allows("https://dash.example.evil", Some("127.0.0.1:8080")));
        assert!(some.cors_layer().is_some());

        let any = Origins::new(&["*".into()], false);
        assert!(any.allows("null", None));
    }

    #[test]
    fn loopback_names_are_localhost_and_loopback_addresses() {
        for host in [
            "localhost",
            "localhost:8080",
            "a.localhost:1",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:8080",
            "[::2]:1",
            "[::1",
            "",
            "127.0.0.1.evil:80",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn origins_must_be_scheme_and_authority() {
        for good in [
            "*",
            "https://dash.example",
            "http://127.0.0.1:3000",
            "vscode-webview://abc",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "",
            "dash.example",
            "https://",
            "https://a/b",
            "https://a b",
            "*.example",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }
}
