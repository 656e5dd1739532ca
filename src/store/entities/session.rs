//! Sessions: one emulated board with its backend, its current state and program.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub backend: String,
    pub board_id: String,
    pub state: String,
    pub exit_code: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub state_reason: Option<String>,
    pub current_program_id: Option<String>,
    /// Collect an execution trace for coverage on every power-on.
    pub coverage: bool,
    /// IN_ASM or HIT_COUNTS.
    pub coverage_collector: String,
    /// Virtual time counted in instructions: runs repeat exactly.
    pub deterministic: bool,
    /// Every power-on records its run for replay.
    pub record: bool,
    /// The recording this session replays.
    pub replay_of: Option<String>,
    /// The machine sleeps in an image on disk; the session is PAUSED and wakes on use.
    pub hibernated: bool,
    /// The API key's name that created it (`auth`); none when auth was off.
    pub owner: Option<String>,
    /// The server node whose process runs this session's emulator.
    pub node: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
