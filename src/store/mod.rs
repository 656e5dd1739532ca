//! Persistence: the only module that knows SQL or sea-orm. It connects (SQLite file by
//! default, PostgreSQL by URL), applies migrations on start, and offers plain records and
//! small, named operations to the services above it.

mod audit;
mod census;
mod entities;
mod jobs;
mod keys;
mod migration;
mod recordings;
mod snapshots;

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, Database, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use entities::board_template::Model as BoardTemplateRecord;
pub use entities::program::Model as ProgramRecord;
pub use entities::session::Model as SessionRecord;
pub use entities::session_event::Model as SessionEventRecord;

use entities::{board_template, program, recording, session, session_event, snapshot};

pub use audit::{AuditFilter, AuditRecord};
pub use jobs::{JobEnd, JobRecord, TERMINAL_STATES};
pub use keys::ApiKeyRecord;
pub use recordings::RecordingRecord;
pub use snapshots::SnapshotRecord;

/// A database failure, with the operation that hit it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {error}")]
    Connect { url: String, error: sea_orm::DbErr },
    #[error("database migration failed: {0}")]
    Migrate(sea_orm::DbErr),
    #[error("database error while {operation}: {error}")]
    Query {
        operation: &'static str,
        error: sea_orm::DbErr,
    },
    #[error("{what} already exists")]
    Conflict { what: String },
}

fn query(operation: &'static str) -> impl FnOnce(sea_orm::DbErr) -> StoreError {
    move |error| StoreError::Query { operation, error }
}

/// Record ids (sessions, programs, jobs) are UUIDs the server made: any other text (a
/// path, a NUL byte, which PostgreSQL refuses) names no record, and callers answer
/// NOT_FOUND without asking the database.
pub fn is_record_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok()
}

/// A change of a session's state, written with its history row in one transaction.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub kind: String,
    pub state: String,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// The pool's settings. SQLite: a write-ahead log with NORMAL sync commits without an
/// fsync each time (still safe against a crash of the process; the last commits can be
/// lost on a power cut), which is what lets a node run many short jobs a second.
fn connect_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).max_connections(8);
    options.map_sqlx_sqlite_opts(|sqlite| {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        sqlite
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10))
    });
    options
}

impl Store {
    /// Connects and migrates. The URL is not echoed beyond its scheme and host in logs.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let connect = || async {
            Database::connect(connect_options(url))
                .await
                .map_err(|error| StoreError::Connect {
                    url: redact(url),
                    error,
                })
        };
        let db = connect().await?;
        migration::Migrator::up(&db, None)
            .await
            .map_err(StoreError::Migrate)?;
        if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
            // Pooled SQLite connections opened while the migrations altered a table
            // returned the column the newest one added as NULL, now and then under
            // load: the server works on connections opened after them.
            let _ = db.close().await;
            return Ok(Self {
                db: connect().await?,
            });
        }
        Ok(Self { db })
    }

    fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }

    // ---- sessions -------------------------------------------------------------------

    pub async fn insert_session(&self, record: SessionRecord) -> Result<(), StoreError> {
        session::Entity::insert(record.into_active_model())
            .exec(&self.db)
            .await
            .map_err(query("creating a session"))?;
        Ok(())
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        session::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(query("reading a session"))
    }

    /// How many sessions `owner` has (`None`: the ones without an owner), optionally
    /// only in `states`, not counting `except`.
    pub async fn count_sessions(
        &self,
        owner: Option<&str>,
        states: Option<&[&str]>,
        except: Option<&str>,
    ) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        let mut select = session::Entity::find().filter(match owner {
            Some(owner) => session::Column::Owner.eq(owner),
            None => session::Column::Owner.is_null(),
        });
        if let Some(states) = states {
            select = select.filter(session::Column::State.is_in(states.iter().copied()));
        }
        if let Some(except) = except {
            select = select.filter(session::Column::Id.ne(except));
        }
        select
            .count(&self.db)
            .await
            .map_err(query("counting sessions"))
    }

    pub async fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        session::Entity::find()
            .order_by_asc(session::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(query("listing sessions"))
    }

    /// Sets the session's state and appends the event to its history, atomically.
    pub async fn change_state(
        &self,
        session_id: &str,
        change: &StateChange,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let txn = self
            .db
            .begin()
            .await
            .map_err(query("starting a transaction"))?;
        session::ActiveModel {
            id: Set(session_id.to_owned()),
            state: Set(change.state.clone()),
            exit_code: Set(change.exit_code),
            state_reason: Set(change.message.clone()),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&txn)
        .await
        .map_err(query("updating a session's state"))?;
        session_event::ActiveModel {
            session_id: Set(session_id.to_owned()),
            kind: Set(change.kind.clone()),
            state: Set(change.state.clone()),
            exit_code: Set(change.exit_code),
            message: Set(change.message.clone()),
            at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(query("recording a session event"))?;
        txn.commit()
            .await
            .map_err(query("committing a state change"))
    }

    pub async fn set_current_program(
        &self,
        session_id: &str,
        program_id: &str,
    ) -> Result<(), StoreError> {
        session::ActiveModel {
            id: Set(session_id.to_owned()),
            current_program_id: Set(Some(program_id.to_owned())),
            updated_at: Set(Utc::now()),
            ..Default::default()
        }
        .update(&self.db)
        .await
        .map_err(query("setting the current program"))?;
        Ok(())
    }

    /// Marks the session's machine as sleeping in an image on disk, or awake again.
    pub async fn set_hibernated(
        &self,
        session_id: &str,
        hibernated: bool,
    ) -> Result<(), StoreError> {
        session::ActiveModel {
            id: Set(session_id.to_owned()),
            hibernated: Set(hibernated),
            ..Default::default()
        }
        .update(&self.db)
        .await
        .map_err(query("marking a session hibernated"))?;
        Ok(())
    }

    /// Makes a new session the replay of a recording, with its copy of the program.
    pub async fn set_replay(
        &self,
        session_id: &str,
        program_id: &str,
        recording_id: &str,
    ) -> Result<(), StoreError> {
        session::ActiveModel {
            id: Set(session_id.to_owned()),
            current_program_id: Set(Some(program_id.to_owned())),
            replay_of: Set(Some(recording_id.to_owned())),
            updated_at: Set(Utc::now()),
            ..Default::default()
        }
        .update(&self.db)
        .await
        .map_err(query("making a replay"))?;
        Ok(())
    }

    /// Deletes the session with its history, program, snapshot and recording records.
    pub async fn delete_session(&self, session_id: &str) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin()
            .await
            .map_err(query("starting a transaction"))?;
        session_event::Entity::delete_many()
            .filter(session_event::Column::SessionId.eq(session_id))
            .exec(&txn)
            .await
            .map_err(query("deleting session events"))?;
        program::Entity::delete_many()
            .filter(program::Column::SessionId.eq(session_id))
            .exec(&txn)
            .await
            .map_err(query("deleting programs"))?;
        snapshot::Entity::delete_many()
            .filter(snapshot::Column::SessionId.eq(session_id))
            .exec(&txn)
            .await
            .map_err(query("deleting snapshots"))?;
        recording::Entity::delete_many()
            .filter(recording::Column::SessionId.eq(session_id))
            .exec(&txn)
            .await
            .map_err(query("deleting recordings"))?;
        session::Entity::delete_by_id(session_id.to_owned())
            .exec(&txn)
            .await
            .map_err(query("deleting a session"))?;
        txn.commit().await.map_err(query("committing a delete"))
    }

    pub async fn session_events(
        &self,
        session_id: &str,
    ) -> Result<Vec<SessionEventRecord>, StoreError> {
        session_event::Entity::find()
            .filter(session_event::Column::SessionId.eq(session_id))
            .order_by_asc(session_event::Column::Id)
            .all(&self.db)
            .await
            .map_err(query("listing session events"))
    }

    // ---- programs -------------------------------------------------------------------

    pub async fn insert_program(&self, record: ProgramRecord) -> Result<(), StoreError> {
        program::Entity::insert(record.into_active_model())
            .exec(&self.db)
            .await
            .map_err(query("recording a program"))?;
        Ok(())
    }

    pub async fn program(&self, id: &str) -> Result<Option<ProgramRecord>, StoreError> {
        program::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(query("reading a program"))
    }

    pub async fn programs(&self, session_id: &str) -> Result<Vec<ProgramRecord>, StoreError> {
        program::Entity::find()
            .filter(program::Column::SessionId.eq(session_id))
            .order_by_asc(program::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(query("listing programs"))
    }

    // ---- user board templates -----------------------------------------------------------

    pub async fn board_templates(&self) -> Result<Vec<BoardTemplateRecord>, StoreError> {
        board_template::Entity::find()
            .order_by_asc(board_template::Column::Id)
            .all(&self.db)
            .await
            .map_err(query("listing board templates"))
    }

    pub async fn insert_board_template(
        &self,
        id: &str,
        definition: &str,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let record = board_template::ActiveModel {
            id: Set(id.to_owned()),
            definition: Set(definition.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let inserted = board_template::Entity::insert(record)
            .on_conflict(
                OnConflict::column(board_template::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(query("creating a board template"))?;
        if inserted == 0 {
            return Err(StoreError::Conflict {
                what: format!("board template '{id}'"),
            });
        }
        Ok(())
    }

    /// Returns false when no such template exists.
    pub async fn update_board_template(
        &self,
        id: &str,
        definition: &str,
    ) -> Result<bool, StoreError> {
        let result = board_template::Entity::update_many()
            .filter(board_template::Column::Id.eq(id))
            .col_expr(board_template::Column::Definition, definition.into())
            .col_expr(board_template::Column::UpdatedAt, Utc::now().into())
            .exec(&self.db)
            .await
            .map_err(query("updating a board template"))?;
        Ok(result.rows_affected > 0)
    }

    /// Returns false when no such template exists.
    pub async fn delete_board_template(&self, id: &str) -> Result<bool, StoreError> {
        let result = board_template::Entity::delete_by_id(id.to_owned())
            .exec(&self.db)
            .await
            .map_err(query("deleting a board template"))?;
        Ok(result.rows_affected > 0)
    }
}

/// Keeps the scheme and host of a URL for messages; drops credentials and paths' secrets.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => "<invalid url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_drops_credentials() {
        assert_eq!(
            super::redact("postgres://user:secret@db:5432/x"),
            "postgres://db:5432/x"
        );
    }
}
