//! API keys in the API (admins only, see `auth::rules`): create one (its token is in
//! the answer, once), list them, revoke one. The work is in `crate::auth`.

use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::errors::ApiResult;
use super::sessions::app;
use crate::auth::{ApiKey as KeyRecord, Role as AuthRole};

/// What a key may do: viewers read, operators drive their own sessions and jobs,
/// admins do everything.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::auth::Role")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

/// An API key as listed: never its token.
#[derive(SimpleObject)]
pub struct ApiKey {
    /// The user: what the key creates is owned by this name.
    name: String,
    role: Role,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<KeyRecord> for ApiKey {
    fn from(key: KeyRecord) -> Self {
        Self {
            name: key.name,
            role: key.role.into(),
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A key just made, with its token: shown this once, stored only as a hash.
#[derive(SimpleObject)]
pub struct NewApiKey {
    key: ApiKey,
    /// Send it as `Authorization: Bearer TOKEN`.
    token: String,
}

#[derive(Default)]
pub struct KeyQuery;

#[Object]
impl KeyQuery {
    /// Every API key, revoked ones too, oldest first.
    async fn api_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiKey>> {
        Ok(app(ctx)
            .keys
            .list()
            .await?
            .into_iter()
            .map(ApiKey::from)
            .collect())
    }
}

#[derive(Default)]
pub struct KeyMutation;

#[Object]
impl KeyMutation {
    /// A new key for user `name` (letters, digits, `-`, `_`, `.`; a name is never
    /// reused, revoked or not: ALREADY_EXISTS).
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: Role,
    ) -> ApiResult<NewApiKey> {
        let (key, token) = app(ctx).keys.create(&name, AuthRole::from(role)).await?;
        Ok(NewApiKey {
            key: key.into(),
            token,
        })
    }

    /// Revokes a key: its token stops working at once. False when no live key has
    /// that name.
    async fn revoke_api_key(&self, ctx: &Context<'_>, name: String) -> ApiResult<bool> {
        Ok(app(ctx).keys.revoke(&name).await?)
    }
}
