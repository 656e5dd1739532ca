//! The schema: query, mutation and subscription roots merged from one object per domain.

use std::sync::Arc;

use async_graphql::{MergedObject, MergedSubscription, Schema};

use super::audit::AuditQuery;
use super::boards::{BoardMutation, BoardQuery};
use super::coverage::CoverageQuery;
use super::debug::{DebugMutation, DebugQuery};
use super::errors::ErrorCodes;
use super::ide::{IdeQuery, IdeSubscription};
use super::jobs::{JobMutation, JobQuery, JobSubscription};
use super::keys::{KeyMutation, KeyQuery};
use super::recordings::RecordingMutation;
use super::sessions::{SessionMutation, SessionQuery, SessionSubscription};
use super::snapshots::SnapshotMutation;
use super::symbolic::{SymbolicMutation, SymbolicQuery};
use crate::app::App;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    SessionQuery,
    BoardQuery,
    CoverageQuery,
    JobQuery,
    DebugQuery,
    IdeQuery,
    SymbolicQuery,
    KeyQuery,
    AuditQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    SessionMutation,
    BoardMutation,
    JobMutation,
    DebugMutation,
    SymbolicMutation,
    SnapshotMutation,
    RecordingMutation,
    KeyMutation,
);

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(SessionSubscription, JobSubscription, IdeSubscription);

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema without data: enough to print the SDL.
pub fn schema_builder() -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .extension(crate::auth::guard::Guard)
    .extension(ErrorCodes)
    .extension(super::request_id::RequestIds)
    .extension(super::metrics::OperationTiming)
    .limit_depth(16)
    .limit_complexity(10_000)
}

pub fn build(app: Arc<App>) -> AppSchema {
    schema_builder().data(app).finish()
}

/// The SDL as served, the content of schema.graphql.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}
