//! CI jobs: what to run, the rules that judge it, and how it ended.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub backend: String,
    pub board_id: String,
    pub program_sha256: String,
    pub program_name: String,
    pub timeout_seconds: i32,
    pub expect_exit_code: Option<i32>,
    /// JSON array of regular expressions that must appear in order.
    #[sea_orm(column_type = "Text")]
    pub expect_uart: String,
    /// JSON array of regular expressions that must not appear.
    #[sea_orm(column_type = "Text")]
    pub forbid_uart: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub uart_input: Option<String>,
    pub coverage: bool,
    /// `IN_ASM` or `HIT_COUNTS` (see `backend::Collector`), meaningful with `coverage`.
    pub coverage_collector: String,
    /// Virtual time counted in instructions: runs repeat exactly.
    pub deterministic: bool,
    /// The snapshot the job's machine starts in instead of a cold boot.
    pub from_snapshot: Option<String>,
    /// A failing run keeps its failure point as a snapshot of its session.
    pub keep_on_failure: bool,
    /// The run is recorded for replay.
    pub record: bool,
    pub state: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub failure_reason: Option<String>,
    pub exit_code: Option<i32>,
    pub node: Option<String>,
    /// How many times a node started it (more than one after a reclaim).
    pub attempt: i32,
    pub session_id: Option<String>,
    /// The API key's name that created it (`auth`); none when auth was off.
    pub owner: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub started_at: Option<ChronoDateTimeUtc>,
    pub finished_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
