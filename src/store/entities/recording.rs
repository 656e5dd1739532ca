//! Recordings of a session's runs (record and replay); the files are in the session's
//! run dir, under `recordings/<id>`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recordings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub session_id: String,
    /// The program the run ran: what a replay boots and debugs.
    pub program_id: String,
    /// Recorded under deterministic icount settings (a replay must use the same).
    pub deterministic: bool,
    /// The last instruction count the server saw while recording.
    pub instructions: Option<i64>,
    /// Where a failing job failed, as an instruction count (`debugJob` replays to it).
    pub failure_at: Option<i64>,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
