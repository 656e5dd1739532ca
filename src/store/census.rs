//! Counts for `/metrics`: sessions by state and backend, jobs by state. One grouped
//! query each, so a scrape costs two queries however many rows there are.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::entities::{job, session};
use super::{Store, StoreError, query};

impl Store {
    /// (state, backend, count) of the sessions `node` runs.
    pub async fn session_census(
        &self,
        node: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        session::Entity::find()
            .select_only()
            .column(session::Column::State)
            .column(session::Column::Backend)
            .column_as(session::Column::Id.count(), "count")
            .filter(session::Column::Node.eq(node))
            .group_by(session::Column::State)
            .group_by(session::Column::Backend)
            .into_tuple()
            .all(self.db())
            .await
            .map_err(query("counting sessions by state"))
    }

    /// (state, count) of every job in the database (shared by the nodes).
    pub async fn job_census(&self) -> Result<Vec<(String, i64)>, StoreError> {
        job::Entity::find()
            .select_only()
            .column(job::Column::State)
            .column_as(job::Column::Id.count(), "count")
            .group_by(job::Column::State)
            .into_tuple()
            .all(self.db())
            .await
            .map_err(query("counting jobs by state"))
    }
}
