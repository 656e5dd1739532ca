//! Snapshot records: one row per saved machine state of a session.

use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};

use super::entities::snapshot;
use super::{Store, StoreError, query};

pub use super::entities::snapshot::Model as SnapshotRecord;

impl Store {
    /// Records a snapshot; a second one of the same name in a session is a conflict.
    pub async fn insert_snapshot(&self, record: SnapshotRecord) -> Result<(), StoreError> {
        let name = record.name.clone();
        match snapshot::Entity::insert(record.into_active_model())
            .exec(self.db())
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict {
                what: format!("a snapshot named '{name}' in this session"),
            }),
            Err(error) => Err(query("recording a snapshot")(error)),
        }
    }

    pub async fn snapshot(&self, id: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        snapshot::Entity::find_by_id(id.to_owned())
            .one(self.db())
            .await
            .map_err(query("reading a snapshot"))
    }

    /// A session's snapshots, oldest first.
    pub async fn snapshots(&self, session_id: &str) -> Result<Vec<SnapshotRecord>, StoreError> {
        snapshot::Entity::find()
            .filter(snapshot::Column::SessionId.eq(session_id))
            .order_by_asc(snapshot::Column::CreatedAt)
            .all(self.db())
            .await
            .map_err(query("listing snapshots"))
    }

    pub async fn delete_snapshot(&self, id: &str) -> Result<bool, StoreError> {
        let result = snapshot::Entity::delete_by_id(id.to_owned())
            .exec(self.db())
            .await
            .map_err(query("deleting a snapshot"))?;
        Ok(result.rows_affected > 0)
    }
}

fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
