//! Who is asking, and what they may do: API keys, roles and ownership.
//!
//! With auth off (the default on a loopback listen address) every request is `local`
//! and may do everything, as before. With `--auth required` a request carries
//! `Authorization: Bearer TOKEN` (HTTP) or `{"authorization": "Bearer TOKEN"}` in the
//! WebSocket `connection_init` payload; the token names an API key, and the key a user
//! (its name) and a [`Role`]:
//!
//! - viewer reads everything and changes nothing (FORBIDDEN);
//! - operator creates sessions and jobs, which it then owns, and reads and drives only
//!   those: another user's session or job is NOT_FOUND to it, as if it did not exist;
//! - admin does everything, and alone manages board templates and keys.
//!
//! No token, or one that names no live key: UNAUTHENTICATED. Tokens are random (256
//! bits), shown once, and stored only as their SHA-256; the first admin key is made with
//! `virserver keys create` against the database, so there is no default password.
//!
//! The decision is one pure function, [`decide`]; `rules.rs` says what each root field
//! of the schema needs (a test keeps it equal to the schema, so a new field without a
//! rule fails the build's tests, and an unlisted field is refused at run time), and
//! `guard.rs` applies both to every request. `cli.rs` is `virserver keys`.

pub mod bench;
pub mod cli;
pub mod guard;
pub mod rules;

use std::fmt;

use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::store::{ApiKeyRecord, Store, StoreError};

/// What a key may do; ordered, each role has the rights of those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// `--auth`: whether requests must carry a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Required,
    Off,
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::Required => "required",
            AuthMode::Off => "off",
        })
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Auth is off: everyone is `local`, with every right.
    Local,
    /// A live API key: its name is the user.
    Key { name: String, role: Role },
    /// Auth is on and the request carried no valid token; why not.
    Unauthenticated(&'static str),
}

impl Identity {
    /// The user as the audit log and owners name it: the key's name, or `local`.
    pub fn user(&self) -> &str {
        match self {
            Identity::Key { name, .. } => name,
            Identity::Local | Identity::Unauthenticated(_) => "local",
        }
    }

    /// What a session or job this identity creates records as its owner.
    pub fn owner(&self) -> Option<String> {
        match self {
            Identity::Key { name, .. } => Some(name.clone()),
            Identity::Local | Identity::Unauthenticated(_) => None,
        }
    }

    /// The user whose sessions and jobs alone this identity may see: an operator's own
    /// name; `None` for those who see everything.
    pub fn confined_to(&self) -> Option<&str> {
        match self {
            Identity::Key { name, role } if *role == Role::Operator => Some(name),
            _ => None,
        }
    }

    /// Whether a listing shows this identity a session or job owned by `owner`.
    pub fn sees(&self, owner: Option<&str>) -> bool {
        match self {
            Identity::Unauthenticated(_) => false,
            _ => self.confined_to().is_none_or(|name| owner == Some(name)),
        }
    }
}

/// What a root field needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading: every role (operators only what they own).
    Read,
    /// Creating and driving sessions and jobs: operators (their own) and admins.
    Operate,
    /// Board templates and keys: admins.
    Admin,
}

/// Why a request is refused; the error codes are the API's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("the {role} key '{user}' may not {what}")]
    Forbidden {
        role: &'static str,
        user: String,
        what: &'static str,
    },
    /// Another user's session or job: to an operator it does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
}

impl Denied {
    pub fn code(&self) -> &'static str {
        match self {
            Denied::Unauthenticated(_) => "UNAUTHENTICATED",
            Denied::Forbidden { .. } => "FORBIDDEN",
            Denied::NotFound(_) => "NOT_FOUND",
        }
    }
}

/// The whole decision: may `identity` do what needs `need` to targets owned by
/// `owners` (each the target's kind and its owner; targets that do not exist are not
/// listed, their resolvers answer NOT_FOUND themselves)?
pub fn decide(
    identity: &Identity,
    need: Need,
    owners: &[(&'static str, Option<&str>)],
) -> Result<(), Denied> {
    let (name, role) = match identity {
        Identity::Local => return Ok(()),
        Identity::Unauthenticated(why) => return Err(Denied::Unauthenticated(why)),
        Identity::Key { name, role } => (name, *role),
    };
    let forbidden = |what| Denied::Forbidden {
        role: role.as_str(),
        user: name.clone(),
        what,
    };
    match (role, need) {
        (Role::Admin, _) => return Ok(()),
        (_, Need::Admin) => return Err(forbidden("manage board templates or keys")),
        (Role::Viewer, Need::Operate) => return Err(forbidden("change anything")),
        (Role::Viewer, Need::Read) => return Ok(()),
        (Role::Operator, _) => {}
    }
    match owners
        .iter()
        .find(|(_, owner)| *owner != Some(name.as_str()))
    {
        Some((kind, _)) => Err(Denied::NotFound(kind)),
        None => Ok(()),
    }
}

/// Why an API key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a key name is 1 to 64 letters, digits, '-', '_' or '.'")]
    BadName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key as listed: never its token.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    pub role: Role,
    pub created_at: chrono::DateTime<Utc>,
    pub revoked_at: Option<chrono::DateTime<Utc>>,
}

impl From<ApiKeyRecord> for ApiKey {
    fn from(record: ApiKeyRecord) -> Self {
        Self {
            // Written by `Keys::create` only; a hand-edited row is at most a viewer.
            role: Role::parse(&record.role).unwrap_or(Role::Viewer),
            name: record.name,
            created_at: record.created_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// The HTTP client of every command that talks to a server (`submit`, `dap`,
/// `ide-config`, `bench auth`): `https://` through the process's TLS provider
/// (installed here, so the WebSocket client made afterwards has it too), and
/// `Authorization: Bearer TOKEN` on every request when a token is given.
pub fn bearer_client(token: Option<&str>) -> anyhow::Result<reqwest::Client> {
    crate::tls::install_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("the token is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// Sends a request and returns `data`, or fails with the server's error and code.
pub async fn graphql(request: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let response: serde_json::Value = request
        .send()
        .await
        .context("cannot reach the server")?
        .json()
        .await
        .context("the server did not answer with JSON")?;
    if let Some(error) = response["errors"].get(0) {
        anyhow::bail!(
            "{} ({})",
            error["message"].as_str().unwrap_or("error"),
            error["extensions"]["code"].as_str().unwrap_or("no code")
        );
    }
    Ok(response["data"].clone())
}

/// The prefix of every token, so that one is recognisable in a leak scan.
const TOKEN_PREFIX: &str = "vsk_";

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Keys over the store, and the server's auth mode.
#[derive(Clone)]
pub struct Keys {
    store: Store,
    required: bool,
}

impl Keys {
    pub fn new(store: Store, mode: AuthMode) -> Self {
        Self {
            store,
            required: mode == AuthMode::Required,
        }
    }

    pub fn required(&self) -> bool {
        self.required
    }

    /// A new key; returns it and its token, which exists nowhere else afterwards.
    pub async fn create(&self, name: &str, role: Role) -> Result<(ApiKey, String), KeyError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid || name == "local" {
            return Err(KeyError::BadName);
        }
        let token = format!(
            "{TOKEN_PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let record = ApiKeyRecord {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            token_hash: hash(&token),
            created_at: Utc::now(),
            revoked_at: None,
        };
        self.store.insert_api_key(record.clone()).await?;
        Ok((record.into(), token))
    }

    pub async fn list(&self) -> Result<Vec<ApiKey>, KeyError> {
        Ok(self
            .store
            .api_keys()
            .await?
            .into_iter()
            .map(ApiKey::from)
            .collect())
    }

    /// Revokes `name`; false when no live key has that name.
    pub async fn revoke(&self, name: &str) -> Result<bool, KeyError> {
        Ok(self.store.revoke_api_key(name).await?)
    }

    /// Who sends `authorization` (the header's value, or the WebSocket payload's).
    pub async fn identify(&self, authorization: Option<&str>) -> Identity {
        if !self.required {
            return Identity::Local;
        }
        let Some(value) = authorization else {
            return Identity::Unauthenticated(
                "this server requires an API key: send `Authorization: Bearer TOKEN`",
            );
        };
        let token = match value.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Identity::Unauthenticated("the authorization is not `Bearer TOKEN`"),
        };
        if !token.starts_with(TOKEN_PREFIX) {
            return Identity::Unauthenticated("the token is not a VirServer API key");
        }
        match self.store.api_key_by_hash(&hash(token)).await {
            Ok(Some(record)) => {
                let key = ApiKey::from(record);
                Identity::Key {
                    name: key.name,
                    role: key.role,
                }
            }
            Ok(None) => Identity::Unauthenticated("the token names no live API key"),
            Err(error) => {
                tracing::error!(%error, "cannot check an API key");
                Identity::Unauthenticated("the API key cannot be checked now; see the server log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, role: Role) -> Identity {
        Identity::Key {
            name: name.into(),
            role,
        }
    }

    #[test]
    fn roles_and_owners_decide() {
        let ann = key("ann", Role::Operator);
        let own = [("session", Some("ann"))];
        let other = [("session", Some("bob"))];
        let local = [("session", None)];
        assert_eq!(decide(&ann, Need::Operate, &own), Ok(()));
        assert_eq!(
            decide(&ann, Need::Operate, &other),
            Err(Denied::NotFound("session"))
        );
        assert_eq!(
            decide(&ann, Need::Read, &local),
            Err(Denied::NotFound("session"))
        );
        assert_eq!(decide(&ann, Need::Operate, &[]), Ok(()));
        assert_eq!(
            decide(&ann, Need::Admin, &[]).unwrap_err().code(),
            "FORBIDDEN"
        );
        let viewer = key("vic", Role::Viewer);
        assert_eq!(decide(&viewer, Need::Read, &other), Ok(()));
        assert_eq!(
            decide(&viewer, Need::Operate, &other).unwrap_err().code(),
            "FORBIDDEN"
        );
        assert_eq!(
            decide(&key("root", Role::Admin), Need::Admin, &other),
            Ok(())
        );
        assert_eq!(decide(&Identity::Local, Need::Admin, &other), Ok(()));
        assert_eq!(
            decide(&Identity::Unauthenticated("no"), Need::Read, &[])
                .unwrap_err()
                .code(),
            "UNAUTHENTICATED"
        );
        assert!(ann.sees(Some("ann")) && !ann.sees(Some("bob")) && !ann.sees(None));
        assert!(viewer.sees(None) && Identity::Local.sees(Some("x")));
    }
}
