//! sea-orm entities, one file per table. Only `store` uses them; the rest of the server
//! sees the plain records that `store` returns.

pub mod board_template;
pub mod program;
pub mod session;
pub mod session_event;
