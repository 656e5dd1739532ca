//! The GraphQL edge: the only module that knows GraphQL. Types and resolvers per domain
//! (`sessions`, `boards`), error codes (`errors`), the merged schema (`schema`) and the
//! HTTP/WebSocket wiring (`http`). Resolvers translate between GraphQL and the services;
//! they hold no state and make no decisions of their own.

mod audit;
mod boards;
mod coverage;
mod debug;
mod errors;
pub use errors::coded;
pub mod http;
mod ide;
mod jobs;
mod keys;
pub mod metrics;
pub mod origin;
mod rate;
mod recordings;
mod request_id;
pub mod schema;
mod sessions;
mod snapshots;
mod symbolic;
