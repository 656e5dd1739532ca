//! API key records (see `auth`): created, listed, revoked, found by token hash.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};

use super::entities::api_key;
use super::{Store, StoreError, query};

pub use super::entities::api_key::Model as ApiKeyRecord;

impl Store {
    /// Stores a new key; [`StoreError::Conflict`] when the name was ever used.
    pub async fn insert_api_key(&self, record: ApiKeyRecord) -> Result<(), StoreError> {
        if api_key::Entity::find_by_id(record.name.clone())
            .one(self.db())
            .await
            .map_err(query("reading an API key"))?
            .is_some()
        {
            return Err(StoreError::Conflict {
                what: format!(
                    "an API key named '{}' (names are never reused)",
                    record.name
                ),
            });
        }
        api_key::Entity::insert(record.into_active_model())
            .exec(self.db())
            .await
            .map_err(query("storing an API key"))?;
        Ok(())
    }

    /// Every key, revoked ones too, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        api_key::Entity::find()
            .order_by_asc(api_key::Column::CreatedAt)
            .all(self.db())
            .await
            .map_err(query("listing API keys"))
    }

    /// The live (not revoked) key whose token hashes to `token_hash`.
    pub async fn api_key_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        api_key::Entity::find()
            .filter(api_key::Column::TokenHash.eq(token_hash))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(self.db())
            .await
            .map_err(query("finding an API key"))
    }

    /// Revokes the live key `name`; false when there is none.
    pub async fn revoke_api_key(&self, name: &str) -> Result<bool, StoreError> {
        let Some(key) = api_key::Entity::find_by_id(name.to_owned())
            .filter(api_key::Column::RevokedAt.is_null())
            .one(self.db())
            .await
            .map_err(query("reading an API key"))?
        else {
            return Ok(false);
        };
        let mut row = key.into_active_model();
        row.revoked_at = Set(Some(Utc::now()));
        row.update(self.db())
            .await
            .map_err(query("revoking an API key"))?;
        Ok(true)
    }
}
