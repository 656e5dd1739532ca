//! The audit log in the API: `auditLog`, oldest first, paged by `after`. The work is
//! in `crate::audit`.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::errors::{ApiResult, coded};
use super::sessions::app;
use crate::auth::{Identity, Role};
use crate::store::{AuditFilter, AuditRecord};

/// One recorded operation.
pub struct AuditEntry(AuditRecord);

#[Object]
impl AuditEntry {
    /// Its place in the log: pass it as `after` for the entries that follow.
    async fn id(&self) -> ID {
        ID(self.0.seq.to_string())
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// The node that served it.
    async fn node(&self) -> &str {
        &self.0.node
    }

    /// The API key's name, or `local` with auth off.
    async fn user(&self) -> &str {
        &self.0.user
    }

    /// The mutation's field name (`powerSession`).
    async fn operation(&self) -> &str {
        &self.0.operation
    }

    async fn session_id(&self) -> Option<ID> {
        self.0.session_id.clone().map(ID)
    }

    async fn job_id(&self) -> Option<ID> {
        self.0.job_id.clone().map(ID)
    }

    /// The arguments that matter, as JSON text (data as its length, long text cut).
    async fn arguments(&self) -> &str {
        &self.0.arguments
    }

    /// `ok`, or the error code the caller got (refusals are recorded too).
    async fn outcome(&self) -> &str {
        &self.0.outcome
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Entries oldest first, each filter narrowing; an admin reads every user's, anyone
    /// else their own.
    #[allow(clippy::too_many_arguments)]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        session_id: Option<ID>,
        job_id: Option<ID>,
        user: Option<String>,
        since: Option<DateTime<Utc>>,
        #[graphql(default = 100)] first: i32,
        after: Option<ID>,
    ) -> ApiResult<Vec<AuditEntry>> {
        if !(1..=1000).contains(&first) {
            return Err(coded("BAD_INPUT", "first must be between 1 and 1000").into());
        }
        let after = match after {
            Some(id) => Some(
                id.parse::<i64>()
                    .map_err(|_| coded("BAD_INPUT", "after is an entry's id"))?,
            ),
            None => None,
        };
        let identity = crate::auth::guard::identity(ctx);
        let user = match &identity {
            Identity::Key { name, role } if *role != Role::Admin => Some(name.clone()),
            _ => user,
        };
        let filter = AuditFilter {
            session_id: session_id.map(|id| id.0),
            job_id: job_id.map(|id| id.0),
            user,
            since,
            after,
            first: first as u64,
        };
        let entries = app(ctx).audit.entries(&filter).await.map_err(|error| {
            tracing::error!(%error, "cannot read the audit log");
            coded(
                "INTERNAL",
                "the audit log cannot be read now; see the server log",
            )
        })?;
        Ok(entries.into_iter().map(AuditEntry).collect())
    }
}
