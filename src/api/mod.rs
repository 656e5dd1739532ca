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
mod rate;
mod recordings;
pub mod schema;
mod sessions;
mod snapshots;
mod symbolic;
