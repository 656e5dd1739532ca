//! The audit log: who did what to which session or job, when, and how it ended.
//! Rows are only ever inserted (`store::audit` has no update or delete).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// The order of entries; also the paging cursor.
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub at: ChronoDateTimeUtc,
    /// The server node that served the operation.
    pub node: String,
    /// The API key's name, or `local` with auth off.
    pub user: String,
    /// A mutation's field name (`powerSession`), or a gateway operation (`gdb.halt`).
    pub operation: String,
    pub session_id: Option<String>,
    pub job_id: Option<String>,
    /// The arguments that matter, as JSON (large values shortened, data as its length).
    #[sea_orm(column_type = "Text")]
    pub arguments: String,
    /// `ok`, or the error code the caller got.
    pub outcome: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
