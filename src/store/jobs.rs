//! Job persistence: records, claims and idempotent completion. Delivery of jobs is
//! at-least-once (a reclaimed job may run twice), so every state change is a
//! conditional update: only a job still in the expected state (and attempt) changes.

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionTrait,
};

use super::entities::{blob, job, job_artifact};
use super::{Store, StoreError, query};

pub use super::entities::job::Model as JobRecord;

/// How an attempt of a job ended, with what it leaves.
pub struct JobEnd<'a> {
    pub id: &'a str,
    pub attempt: i32,
    pub state: &'a str,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub session_id: Option<&'a str>,
    /// (name, content) pairs: console.log, junit.xml, coverage.info.
    pub artifacts: &'a [(&'a str, &'a str)],
}

/// States a job can no longer leave.
pub const TERMINAL_STATES: [&str; 5] = ["PASSED", "FAILED", "ERROR", "TIMED_OUT", "CANCELLED"];

impl Store {
    pub async fn insert_job(&self, record: JobRecord) -> Result<(), StoreError> {
        job::Entity::insert(record.into_active_model())
            .exec(self.db())
            .await
            .map_err(query("creating a job"))?;
        Ok(())
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        job::Entity::find_by_id(id.to_owned())
            .one(self.db())
            .await
            .map_err(query("reading a job"))
    }

    /// Jobs, newest first, optionally in one state and of one owner; `after` is the id
    /// of the last job of the previous page.
    pub async fn jobs(
        &self,
        state: Option<&str>,
        owned_by: Option<&str>,
        first: u64,
        after: Option<&str>,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let mut select = job::Entity::find();
        if let Some(state) = state {
            select = select.filter(job::Column::State.eq(state));
        }
        if let Some(owner) = owned_by {
            select = select.filter(job::Column::Owner.eq(owner));
        }
        if let Some(after) = after
            && let Some(cursor) = self.job(after).await?
        {
            select = select.filter(
                Condition::any()
                    .add(job::Column::CreatedAt.lt(cursor.created_at))
                    .add(
                        Condition::all()
                            .add(job::Column::CreatedAt.eq(cursor.created_at))
                            .add(job::Column::Id.lt(cursor.id)),
                    ),
            );
        }
        select
            .order_by_desc(job::Column::CreatedAt)
            .order_by_desc(job::Column::Id)
            .limit(first)
            .all(self.db())
            .await
            .map_err(query("listing jobs"))
    }

    pub async fn count_jobs_in(&self, states: &[&str]) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        job::Entity::find()
            .filter(job::Column::State.is_in(states.iter().copied()))
            .count(self.db())
            .await
            .map_err(query("counting jobs"))
    }

    /// How many jobs of `owner` (`None`: those without one) are in `states`.
    pub async fn count_owned_jobs_in(
        &self,
        owner: Option<&str>,
        states: &[&str],
    ) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        job::Entity::find()
            .filter(match owner {
                Some(owner) => job::Column::Owner.eq(owner),
                None => job::Column::Owner.is_null(),
            })
            .filter(job::Column::State.is_in(states.iter().copied()))
            .count(self.db())
            .await
            .map_err(query("counting a user's jobs"))
    }

    /// The ids of jobs in a state, oldest first (the embedded queue re-enqueues them on start).
    pub async fn job_ids_in(&self, states: &[&str]) -> Result<Vec<String>, StoreError> {
        Ok(job::Entity::find()
            .filter(job::Column::State.is_in(states.iter().copied()))
            .order_by_asc(job::Column::CreatedAt)
            .all(self.db())
            .await
            .map_err(query("listing queued jobs"))?
            .into_iter()
            .map(|j| j.id)
            .collect())
    }

    /// Marks the job RUNNING on `node` as a new attempt, unless it already ended.
    /// Returns the attempt number, or `None` when the job is finished or cancelled.
    pub async fn claim_job(&self, id: &str, node: &str) -> Result<Option<i32>, StoreError> {
        let Some(current) = self.job(id).await? else {
            return Ok(None);
        };
        if TERMINAL_STATES.contains(&current.state.as_str()) {
            return Ok(None);
        }
        let attempt = current.attempt + 1;
        let result = job::Entity::update_many()
            .filter(job::Column::Id.eq(id))
            .filter(job::Column::Attempt.eq(current.attempt))
            .filter(job::Column::State.is_not_in(TERMINAL_STATES))
            .col_expr(job::Column::State, Expr::value("RUNNING"))
            .col_expr(job::Column::Node, Expr::value(node))
            .col_expr(job::Column::Attempt, Expr::value(attempt))
            .col_expr(job::Column::StartedAt, Expr::value(Utc::now()))
            .exec(self.db())
            .await
            .map_err(query("claiming a job"))?;
        Ok((result.rows_affected == 1).then_some(attempt))
    }

    pub async fn set_job_session(&self, id: &str, session_id: &str) -> Result<(), StoreError> {
        job::Entity::update_many()
            .filter(job::Column::Id.eq(id))
            .col_expr(job::Column::SessionId, Expr::value(session_id))
            .exec(self.db())
            .await
            .map_err(query("linking a job to its session"))?;
        Ok(())
    }

    /// Records the end of `attempt` with its artifacts and session, in one transaction;
    /// false (and nothing written) when the job had already ended or was taken over by
    /// a later attempt: its completion is then not ours to write.
    pub async fn finish_job(&self, end: JobEnd<'_>) -> Result<bool, StoreError> {
        let txn = self
            .db()
            .begin()
            .await
            .map_err(query("starting a transaction"))?;
        // A cancelled run still leaves its artifacts (the job is CANCELLED already).
        let mut from = vec!["RUNNING"];
        if end.state == "CANCELLED" {
            from.push("CANCELLED");
        }
        let finished = job::Entity::update_many()
            .filter(job::Column::Id.eq(end.id))
            .filter(job::Column::Attempt.eq(end.attempt))
            .filter(job::Column::State.is_in(from))
            .col_expr(job::Column::State, Expr::value(end.state))
            .col_expr(job::Column::ExitCode, Expr::value(end.exit_code))
            .col_expr(job::Column::FailureReason, Expr::value(end.reason.clone()))
            .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
            .col_expr(
                job::Column::SessionId,
                Expr::value(end.session_id.map(str::to_owned)),
            )
            .exec(&txn)
            .await
            .map_err(query("finishing a job"))?
            .rows_affected
            == 1;
        if !finished {
            return Ok(false);
        }
        for (name, content) in end.artifacts {
            let record = job_artifact::ActiveModel {
                job_id: Set(end.id.to_owned()),
                name: Set((*name).to_owned()),
                content: Set((*content).to_owned()),
            };
            job_artifact::Entity::insert(record)
                .on_conflict(
                    OnConflict::columns([job_artifact::Column::JobId, job_artifact::Column::Name])
                        .update_column(job_artifact::Column::Content)
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(query("storing a job artifact"))?;
        }
        txn.commit()
            .await
            .map_err(query("committing a job's end"))?;
        Ok(true)
    }

    /// Marks a job ERROR that never ran (it could not be queued).
    pub async fn fail_unqueued_job(&self, id: &str, reason: String) -> Result<(), StoreError> {
        job::Entity::update_many()
            .filter(job::Column::Id.eq(id))
            .filter(job::Column::State.eq("QUEUED"))
            .col_expr(job::Column::State, Expr::value("ERROR"))
            .col_expr(job::Column::FailureReason, Expr::value(reason))
            .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
            .exec(self.db())
            .await
            .map_err(query("failing a job"))?;
        Ok(())
    }

    /// Cancels a job that has not ended; false when it had.
    pub async fn cancel_job(&self, id: &str) -> Result<bool, StoreError> {
        let result = job::Entity::update_many()
            .filter(job::Column::Id.eq(id))
            .filter(job::Column::State.is_not_in(TERMINAL_STATES))
            .col_expr(job::Column::State, Expr::value("CANCELLED"))
            .col_expr(job::Column::FailureReason, Expr::value("cancelled"))
            .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
            .exec(self.db())
            .await
            .map_err(query("cancelling a job"))?;
        Ok(result.rows_affected == 1)
    }

    pub async fn put_blob(&self, sha256: &str, data: &[u8]) -> Result<(), StoreError> {
        let record = blob::ActiveModel {
            sha256: Set(sha256.to_owned()),
            data: Set(data.to_vec()),
        };
        blob::Entity::insert(record)
            .on_conflict(
                OnConflict::column(blob::Column::Sha256)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.db())
            .await
            .map_err(query("storing a program"))?;
        Ok(())
    }

    pub async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(blob::Entity::find_by_id(sha256.to_owned())
            .one(self.db())
            .await
            .map_err(query("reading a program"))?
            .map(|b| b.data))
    }

    pub async fn artifact(&self, job_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            job_artifact::Entity::find_by_id((job_id.to_owned(), name.to_owned()))
                .one(self.db())
                .await
                .map_err(query("reading a job artifact"))?
                .map(|a| a.content),
        )
    }
}
