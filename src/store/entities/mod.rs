//! sea-orm entities, one file per table. Only `store` uses them; the rest of the server
//! sees the plain records that `store` returns.

pub mod api_key;
pub mod audit_entry;
pub mod blob;
pub mod board_template;
pub mod job;
pub mod job_artifact;
pub mod program;
pub mod recording;
pub mod session;
pub mod session_event;
pub mod snapshot;
