//! Audit records: appended and read, never changed (there is deliberately no update or
//! delete here).

use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::audit_entry;
use super::{Store, StoreError, query};

pub use super::entities::audit_entry::Model as AuditRecord;

/// Which entries to read: every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub session_id: Option<String>,
    pub job_id: Option<String>,
    pub user: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Entries after this one (its `seq`).
    pub after: Option<i64>,
    pub first: u64,
}

impl Store {
    /// Appends one entry (its `seq` is the database's).
    pub async fn append_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        let row = audit_entry::ActiveModel {
            seq: ActiveValue::NotSet,
            at: ActiveValue::Set(record.at),
            node: ActiveValue::Set(record.node),
            user: ActiveValue::Set(record.user),
            operation: ActiveValue::Set(record.operation),
            session_id: ActiveValue::Set(record.session_id),
            job_id: ActiveValue::Set(record.job_id),
            arguments: ActiveValue::Set(record.arguments),
            outcome: ActiveValue::Set(record.outcome),
        };
        audit_entry::Entity::insert(row)
            .exec(self.db())
            .await
            .map_err(query("writing the audit log"))?;
        Ok(())
    }

    /// Entries, oldest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut select = audit_entry::Entity::find();
        if let Some(session) = &filter.session_id {
            select = select.filter(audit_entry::Column::SessionId.eq(session.as_str()));
        }
        if let Some(job) = &filter.job_id {
            select = select.filter(audit_entry::Column::JobId.eq(job.as_str()));
        }
        if let Some(user) = &filter.user {
            select = select.filter(audit_entry::Column::User.eq(user.as_str()));
        }
        if let Some(since) = filter.since {
            select = select.filter(audit_entry::Column::At.gte(since));
        }
        if let Some(after) = filter.after {
            select = select.filter(audit_entry::Column::Seq.gt(after));
        }
        select
            .order_by_asc(audit_entry::Column::Seq)
            .limit(filter.first)
            .all(self.db())
            .await
            .map_err(query("reading the audit log"))
    }
}
