//! Recording records: one row per recorded run of a session.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};

use super::entities::recording;
use super::{Store, StoreError, query};

pub use super::entities::recording::Model as RecordingRecord;

impl Store {
    pub async fn insert_recording(&self, record: RecordingRecord) -> Result<(), StoreError> {
        recording::Entity::insert(record.into_active_model())
            .exec(self.db())
            .await
            .map_err(query("recording a recording"))?;
        Ok(())
    }

    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRecord>, StoreError> {
        recording::Entity::find_by_id(id.to_owned())
            .one(self.db())
            .await
            .map_err(query("reading a recording"))
    }

    /// A session's recordings, newest first.
    pub async fn recordings(&self, session_id: &str) -> Result<Vec<RecordingRecord>, StoreError> {
        recording::Entity::find()
            .filter(recording::Column::SessionId.eq(session_id))
            .order_by_desc(recording::Column::CreatedAt)
            .all(self.db())
            .await
            .map_err(query("listing recordings"))
    }

    /// The last instruction count seen, and where a job failed when it did.
    pub async fn update_recording(
        &self,
        id: &str,
        instructions: Option<i64>,
        failure_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut row = recording::ActiveModel {
            id: Set(id.to_owned()),
            ..Default::default()
        };
        if instructions.is_some() {
            row.instructions = Set(instructions);
        }
        if failure_at.is_some() {
            row.failure_at = Set(failure_at);
        }
        row.update(self.db())
            .await
            .map_err(query("updating a recording"))?;
        Ok(())
    }
}
