//! A request id for every HTTP request and every GraphQL operation, so that a client's
//! error report and the server log meet: each request runs in a `request` span whose
//! `id` every log line under it carries, the response has an `x-request-id` header, and
//! every GraphQL error carries it as `extensions.requestId`. A caller (a load balancer,
//! a CI script) may send its own `x-request-id` (up to 64 of `A-Za-z0-9._-`); anything
//! else is replaced by a fresh one. Operations over a WebSocket get one each, since the
//! connection outlives them.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe,
};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    /// The id of the HTTP request the current task serves.
    static CURRENT: String;
}

/// The id of the HTTP request being served, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

fn fresh() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A caller's id, if it is one we can log and echo safely.
fn accepted(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let fine = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    fine.then(|| text.to_owned())
}

/// Middleware: gives the request its id, span and response header.
pub async fn assign(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(accepted)
        .unwrap_or_else(fresh);
    let span = tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = CURRENT
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// The GraphQL half: `extensions.requestId` on every error.
pub struct RequestIds;

impl ExtensionFactory for RequestIds {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestIds)
    }
}

#[async_trait::async_trait]
impl Extension for RequestIds {
    async fn request(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextRequest<'_>,
    ) -> async_graphql::Response {
        match current() {
            Some(id) => with_id(next.run(ctx).await, &id),
            // An operation sent over a WebSocket.
            None => {
                let id = fresh();
                let span = tracing::info_span!("request", id = %id, over = "websocket");
                with_id(next.run(ctx).instrument(span).await, &id)
            }
        }
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, async_graphql::Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, async_graphql::Response> {
        let id = current().unwrap_or_else(fresh);
        let span = tracing::info_span!("subscription", id = %id);
        let stream = next.run(ctx, stream).map(move |r| with_id(r, &id));
        InSpan {
            inner: stream.boxed(),
            span,
        }
        .boxed()
    }
}

fn with_id(mut response: async_graphql::Response, id: &str) -> async_graphql::Response {
    for error in &mut response.errors {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("requestId", id);
    }
    response
}

/// A stream polled inside a span, so that what a subscription logs names its id.
struct InSpan<S> {
    inner: S,
    span: tracing::Span,
}

impl<S: Stream + Unpin> Stream for InSpan<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        this.inner.poll_next_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_the_caller() {
        let take = |text: &str| accepted(&HeaderValue::from_str(text).unwrap());
        assert_eq!(take("ci-build.42_a").as_deref(), Some("ci-build.42_a"));
        assert_eq!(take(""), None);
        assert_eq!(take("a b"), None);
        assert_eq!(take(&"a".repeat(65)), None);
        assert_eq!(fresh().len(), 32);
    }
}
