//! HTTP wiring, kept small: `/graphql` takes POST (JSON or multipart uploads, with the
//! server's size limit), GET with a WebSocket upgrade (graphql-transport-ws or the older
//! graphql-ws), and plain GET serves GraphiQL. `/healthz` answers "ok".
//! `/programs/{id}` serves an uploaded ELF, for a debugger beside the editor (the
//! `virserver dap` adapter attaching to a session loads its symbols from it).
//!
//! The POST handler reads the body itself rather than through async-graphql-axum's
//! extractor, because that extractor applies no upload limit; an oversized request
//! gets a GraphQL-shaped error with code TOO_LARGE instead of a bare status.
//!
//! Every request gets the caller's [`Identity`] (`auth`): from the `Authorization`
//! header over HTTP, from the `authorization` field of `connection_init` over a
//! WebSocket; the guard then decides per field. `/programs/{id}` is checked here, as a
//! read of the program's session.
//!
//! Around every route: a request id (`request_id`), the browser-origin check
//! (`origin`), CORS headers for configured origins, and request timing (`metrics`,
//! which also serves `/metrics`).

use std::sync::Arc;

use async_graphql::ParseRequestError;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource, MultipartOptions};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use futures_util::TryStreamExt;
use serde_json::json;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::origin::{self, Origins};
use super::rate::RateLimiter;
use super::schema::AppSchema;
use super::{metrics, request_id};
use crate::app::App;
use crate::auth::{Identity, Need, decide};

struct HttpState {
    schema: AppSchema,
    app: Arc<App>,
    /// `--rate-limit`, when set.
    limiter: Option<RateLimiter>,
}

pub fn router(schema: AppSchema, app: Arc<App>) -> Router {
    let limiter = app.config.rate_limit.map(RateLimiter::new);
    let loopback_hosts = app.config.listen.ip().is_loopback()
        && app.config.auth_mode() == crate::auth::AuthMode::Off;
    let origins = Origins::new(&app.config.cors_origins, loopback_hosts);
    let mut router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/programs/{id}", get(program_file))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(HttpState {
            schema,
            app: app.clone(),
            limiter,
        }))
        .merge(
            Router::new()
                .route("/metrics", get(metrics::api_metrics))
                .with_state(app),
        )
        .route_layer(middleware::from_fn(metrics::track_http));
    if let Some(cors) = origins.cors_layer() {
        router = router.layer(cors);
    }
    // Outermost first: every request gets its id, then its origin is checked.
    router
        .layer(middleware::from_fn_with_state(origins, origin::guard))
        .layer(middleware::from_fn(request_id::assign))
}

/// The caller of an HTTP request, from its `Authorization` header.
pub(super) async fn identity(app: &App, headers: &axum::http::HeaderMap) -> Identity {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    app.keys.identify(authorization).await
}

/// One uploaded program's ELF, by its id.
async fn program_file(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let identity = identity(&state.app, &headers).await;
    let sessions = &state.app.sessions;
    let not_found = |message: String| request_error(StatusCode::NOT_FOUND, "NOT_FOUND", message);
    let program = match sessions.program(&id).await {
        Ok(program) => program,
        Err(error) => return not_found(error.to_string()),
    };
    let owner = match state.app.store.session(&program.session_id).await {
        Ok(session) => session.map(|s| s.owner),
        Err(error) => {
            tracing::error!(%error, "cannot read a program's session");
            None
        }
    };
    let owners: Vec<(&'static str, Option<&str>)> = owner
        .iter()
        .map(|owner| ("program", owner.as_deref()))
        .collect();
    if let Err(denied) = decide(&identity, Need::Read, &owners) {
        let status = match denied.code() {
            "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
            "FORBIDDEN" => StatusCode::FORBIDDEN,
            _ => return not_found(format!("no program '{id}'")),
        };
        return request_error(status, denied.code(), denied.to_string());
    }
    match sessions.program_bytes(&program).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/x-elf")], bytes).into_response(),
        Err(error) => {
            tracing::error!(%error, program = %id, "stored program unreadable");
            request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "the stored program cannot be read; see the server log".into(),
            )
        }
    }
}

/// A request-level error in the GraphQL response shape.
pub(super) fn request_error(status: StatusCode, code: &str, message: String) -> Response {
    let mut extensions = json!({ "code": code });
    if let Some(id) = super::request_id::current() {
        extensions["requestId"] = json!(id);
    }
    let body = json!({ "errors": [{ "message": message, "extensions": extensions }] });
    (status, Json(body)).into_response()
}

async fn graphql_post(State(state): State<Arc<HttpState>>, request: Request) -> Response {
    // Room for the operations and map fields around the file.
    let body_limit = state.app.config.max_upload_bytes + 1024 * 1024;
    let too_large = || {
        request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!(
                "the request exceeds the upload limit of {} bytes",
                state.app.config.max_upload_bytes
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > body_limit) {
        return too_large();
    }
    let identity = identity(&state.app, request.headers()).await;
    if let Some(limiter) = &state.limiter
        && !limiter.allow(identity.user())
    {
        return request_error(
            StatusCode::TOO_MANY_REQUESTS,
            "LIMIT_EXCEEDED",
            format!(
                "{} sent more than {} requests in a second (--rate-limit)",
                identity.user(),
                limiter.per_second()
            ),
        );
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limited = http_body_util::Limited::new(request.into_body(), body_limit as usize);
    let stream = Body::new(limited)
        .into_data_stream()
        .map_err(|error| std::io::Error::other(error.to_string()));
    let reader = tokio_util::io::StreamReader::new(stream).compat();
    let options = MultipartOptions::default()
        .max_file_size(state.app.config.max_upload_bytes as usize)
        .max_num_files(8);
    match async_graphql::http::receive_batch_body(content_type, reader, options).await {
        Ok(batch) => {
            let batch = batch.data(identity);
            GraphQLResponse::from(state.schema.execute_batch(batch).await).into_response()
        }
        Err(ParseRequestError::PayloadTooLarge) => too_large(),
        Err(error) if error.to_string().contains("length limit exceeded") => too_large(),
        Err(error) => request_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("cannot parse the GraphQL request: {error}"),
        ),
    }
}

async fn graphql_get(State(state): State<Arc<HttpState>>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &()).await;
    let protocol = GraphQLProtocol::from_request_parts(&mut parts, &()).await;
    match (upgrade, protocol) {
        (Ok(upgrade), Ok(protocol)) => {
            let schema = state.schema.clone();
            let keys = state.app.keys.clone();
            upgrade
                .protocols(ALL_WEBSOCKET_PROTOCOLS)
                .on_upgrade(move |stream| async move {
                    let _open = crate::metrics::WebSocketGuard::open();
                    GraphQLWebSocket::new(stream, schema, protocol)
                        .on_connection_init(move |payload| async move {
                            // `{"authorization": "Bearer TOKEN"}`; some clients send
                            // `Authorization`.
                            let authorization = ["authorization", "Authorization"]
                                .iter()
                                .find_map(|key| payload.get(key)?.as_str().map(str::to_owned));
                            let mut data = async_graphql::Data::default();
                            data.insert(keys.identify(authorization.as_deref()).await);
                            Ok(data)
                        })
                        .serve()
                        .await
                })
        }
        _ => Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .finish(),
        )
        .into_response(),
    }
}
