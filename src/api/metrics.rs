//! The API's side of the metrics (`crate::metrics`): the `/metrics` route, HTTP
//! request durations by route, and GraphQL operation durations by their first root
//! field. Labels only ever hold names the server defines (routes, schema fields), never
//! what a client chose (an operation name, a path), so a client cannot grow the series.
//!
//! `/metrics` on the API listener follows the API's auth: open with auth off (loopback),
//! and with auth on a viewer's or admin's key (operators are kept to their own sessions,
//! and the metrics name every session). `--metrics-listen` serves it on a second
//! address without auth, for a scraper on an internal network.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
};
use async_graphql::{ServerResult, Variables};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::http::request_error;
use crate::app::App;
use crate::auth::{Identity, Role};
use crate::metrics::{CONTENT_TYPE, OperationLabels, metrics, render};

/// Middleware (a route layer, so the route is known): times each request.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics().observe_http(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `/metrics` on the API listener.
pub async fn api_metrics(State(app): State<Arc<App>>, headers: axum::http::HeaderMap) -> Response {
    match super::http::identity(&app, &headers).await {
        Identity::Local
        | Identity::Key {
            role: Role::Viewer | Role::Admin,
            ..
        } => exposition(&app).await,
        Identity::Key { name, .. } => request_error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!(
                "the operator key '{name}' may not read /metrics, which names every session: \
                 use a viewer key, or --metrics-listen"
            ),
        ),
        Identity::Unauthenticated(why) => {
            request_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", why.to_owned())
        }
    }
}

async fn exposition(app: &App) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(app).await).into_response()
}

/// The router of `--metrics-listen`: `/metrics` and nothing else, without auth.
pub fn metrics_only(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(|State(app): State<Arc<App>>| async move { exposition(&app).await }),
        )
        .with_state(app)
}

/// Times GraphQL queries and mutations (subscriptions live as long as their client
/// and are counted as WebSocket connections instead).
pub struct OperationTiming;

impl ExtensionFactory for OperationTiming {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Timing::default())
    }
}

/// One request's: the label of each operation of the document, then the one executed.
#[derive(Default)]
struct Timing {
    operations: Mutex<Vec<(Option<String>, String)>>,
    executed: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Extension for Timing {
    async fn request(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextRequest<'_>,
    ) -> async_graphql::Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let operation = self
            .executed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| "invalid".to_owned());
        metrics()
            .graphql_duration
            .get_or_create(&OperationLabels { operation })
            .observe(started.elapsed().as_secs_f64());
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let registry = &ctx.schema_env.registry;
        let label = |operation: &OperationDefinition| label(registry, operation);
        let labels = match &document.operations {
            DocumentOperations::Single(operation) => vec![(None, label(&operation.node))],
            DocumentOperations::Multiple(operations) => operations
                .iter()
                .map(|(name, operation)| (Some(name.to_string()), label(&operation.node)))
                .collect(),
        };
        *self.operations.lock().unwrap_or_else(|p| p.into_inner()) = labels;
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        let chosen = {
            let operations = self.operations.lock().unwrap_or_else(|p| p.into_inner());
            match operations.as_slice() {
                [(None, label)] => Some(label.clone()),
                many => many
                    .iter()
                    .find(|(name, _)| name.as_deref() == operation_name)
                    .map(|(_, label)| label.clone()),
            }
        };
        *self.executed.lock().unwrap_or_else(|p| p.into_inner()) = chosen;
        next.run(ctx, operation_name).await
    }
}

/// `query.sessions`: the operation's kind and first root field, if the schema has it.
fn label(registry: &async_graphql::registry::Registry, operation: &OperationDefinition) -> String {
    let (kind, root) = match operation.ty {
        OperationType::Query => ("query", Some(registry.query_type.as_str())),
        OperationType::Mutation => ("mutation", registry.mutation_type.as_deref()),
        OperationType::Subscription => ("subscription", registry.subscription_type.as_deref()),
    };
    let first = operation
        .selection_set
        .node
        .items
        .iter()
        .find_map(|selection| match &selection.node {
            Selection::Field(field) => Some(field.node.name.node.as_str()),
            _ => None,
        });
    let known = |name: &str| {
        root.and_then(|root| registry.types.get(root))
            .and_then(|ty| ty.field_by_name(name))
            .is_some()
    };
    match first {
        Some(name) if name.starts_with("__") => format!("{kind}.introspection"),
        Some(name) if known(name) => format!("{kind}.{name}"),
        _ => "invalid".to_owned(),
    }
}
