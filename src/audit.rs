//! The audit log: every mutation, who made it, on which session or job, with the
//! arguments that matter and how it ended (`ok` or the error code the caller got,
//! refusals included). Entries are appended to the database (`store::audit`, which
//! has no update or delete), so they survive restarts and nothing in the API changes
//! them; a failing write fails the operation.
//!
//! The guard (`auth::guard`) writes the entry after each root mutation resolves; each
//! session's gateway reports its GDB clients' operations (`gdb.attach`, `gdb.halt`,
//! `gdb.memoryWrite`, ...: `virserver_gateway::AuditSink`), which a writer task appends
//! with the user of the client's attach ticket (`local` for a plain connection). Read
//! back with `auditLog` (admins everything, others their own entries) or `virserver
//! audit`.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use tokio::sync::mpsc;
use virserver_gateway::{AuditSink, GatewayOperation};

use crate::config::{Config, ConfigOverrides};
use crate::store::{AuditFilter, AuditRecord, Store, StoreError};

/// Longest string argument kept whole; longer ones are cut (a board definition).
const MAX_TEXT: usize = 200;

/// Appends entries for one node.
#[derive(Clone)]
pub struct Audit {
    store: Store,
    node: String,
    /// GDB clients' operations, from the gateways' threads to the writer task.
    gateway: mpsc::UnboundedSender<(String, GatewayOperation)>,
}

/// One operation to record.
pub struct Entry<'a> {
    /// The API key's name, or `local`.
    pub user: &'a str,
    pub operation: &'a str,
    pub session_id: Option<String>,
    pub job_id: Option<String>,
    pub arguments: Value,
    pub outcome: &'a str,
}

impl Audit {
    /// The log, with a task that writes what the gateways report (it ends when the
    /// last clone of this is dropped).
    pub fn new(store: Store, node: String) -> Self {
        let (gateway, mut reported) = mpsc::unbounded_channel::<(String, GatewayOperation)>();
        let audit = Self {
            store,
            node,
            gateway,
        };
        let writer = Self {
            gateway: mpsc::unbounded_channel().0,
            ..audit.clone()
        };
        tokio::spawn(async move {
            while let Some((session_id, operation)) = reported.recv().await {
                let entry = Entry {
                    user: operation.user.as_deref().unwrap_or("local"),
                    operation: operation.operation,
                    session_id: Some(session_id),
                    job_id: None,
                    arguments: serde_json::json!({
                        "client": operation.client,
                        "detail": operation.detail,
                    }),
                    outcome: "ok",
                };
                if let Err(error) = writer.record(entry).await {
                    tracing::error!(%error, "a GDB client's operation is not in the audit log");
                }
            }
        });
        audit
    }

    /// Where a session's gateway reports its clients' operations (`gdb.halt`, ...):
    /// queued, written in order by the writer task. The operation has happened by
    /// then, so a failing write is logged, not answered.
    pub fn gateway_sink(&self, session_id: &str) -> AuditSink {
        let queue = self.gateway.clone();
        let session_id = session_id.to_owned();
        AuditSink(std::sync::Arc::new(move |operation| {
            let _ = queue.send((session_id.clone(), operation));
        }))
    }

    pub async fn record(&self, entry: Entry<'_>) -> Result<(), StoreError> {
        let written = self
            .store
            .append_audit(AuditRecord {
                seq: 0,
                at: Utc::now(),
                node: self.node.clone(),
                user: entry.user.to_owned(),
                operation: entry.operation.to_owned(),
                session_id: entry.session_id,
                job_id: entry.job_id,
                arguments: shorten(entry.arguments).to_string(),
                outcome: entry.outcome.to_owned(),
            })
            .await;
        crate::metrics::metrics().count_audit_write(written.is_ok());
        written
    }

    pub async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit(filter).await
    }
}

/// The arguments as recorded: `data` (UART input, memory contents) as its length, long
/// text cut, everything else as given.
fn shorten(arguments: Value) -> Value {
    match arguments {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| match (name.as_str(), value) {
                    ("data", Value::String(data)) => {
                        let mut length = Map::new();
                        length.insert("bytes".into(), Value::from(data.len()));
                        (name, Value::Object(length))
                    }
                    (_, value) => (name, shorten(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(shorten).collect()),
        Value::String(text) if text.chars().count() > MAX_TEXT => {
            let kept: String = text.chars().take(MAX_TEXT).collect();
            Value::String(format!("{kept}... ({} characters)", text.chars().count()))
        }
        other => other,
    }
}

/// `--format` of `virserver audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// One aligned line per entry.
    Text,
}

/// `virserver audit`: the log, straight from the database the server uses.
#[derive(Debug, clap::Args)]
pub struct AuditCommand {
    /// Entries from this time on: RFC 3339 (`2026-12-04T10:00:00Z`) or an age (`90s`,
    /// `30m`, `12h`, `7d`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    #[arg(long)]
    pub session: Option<String>,
    #[arg(long)]
    pub job: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub config: ConfigOverrides,
}

/// An RFC 3339 time, or an age before now with a unit (`s`, `m`, `h`, `d`).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let bad = || format!("'{text}' is neither an RFC 3339 time nor an age such as 30m, 12h, 7d");
    let digits = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(digits);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        "d" => number.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(bad)?;
    chrono::Duration::try_seconds(seconds)
        .and_then(|age| Utc::now().checked_sub_signed(age))
        .ok_or_else(bad)
}

/// Every entry the filters select, as JSON (the shape `--format jsonl` prints).
pub fn to_json(record: &AuditRecord) -> Value {
    serde_json::json!({
        "seq": record.seq,
        "at": record.at.to_rfc3339(),
        "node": record.node,
        "user": record.user,
        "operation": record.operation,
        "sessionId": record.session_id,
        "jobId": record.job_id,
        "arguments": serde_json::from_str::<Value>(&record.arguments).unwrap_or(Value::Null),
        "outcome": record.outcome,
    })
}

pub async fn cli(command: AuditCommand) -> anyhow::Result<u8> {
    let mut config = Config::load_unchecked(&command.config)?;
    config.prepare_data_dir()?;
    let store = Store::connect(&config.database_url())
        .await
        .context("opening the database")?;
    let mut filter = AuditFilter {
        session_id: command.session,
        job_id: command.job,
        user: command.user,
        since: command.since,
        after: None,
        first: 1000,
    };
    loop {
        let page = store.audit(&filter).await?;
        for record in &page {
            match command.format {
                Format::Jsonl => println!("{}", to_json(record)),
                Format::Text => println!(
                    "{} {:<12} {:<22} {:<10} {} {}",
                    record.at.format("%Y-%m-%d %H:%M:%S%.3f"),
                    record.user,
                    record.operation,
                    record.outcome,
                    record
                        .session_id
                        .as_deref()
                        .or(record.job_id.as_deref())
                        .unwrap_or("-"),
                    record.arguments
                ),
            }
        }
        match page.last() {
            Some(last) if page.len() as u64 == filter.first => filter.after = Some(last.seq),
            _ => return Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_recorded_as_its_length_and_long_text_is_cut() {
        let shortened = shorten(serde_json::json!({
            "sessionId": "s",
            "data": "secret bytes",
            "definition": "x".repeat(500),
            "input": { "data": "ab" },
        }));
        assert_eq!(shortened["data"], serde_json::json!({ "bytes": 12 }));
        assert_eq!(
            shortened["input"]["data"],
            serde_json::json!({ "bytes": 2 })
        );
        assert!(
            shortened["definition"]
                .as_str()
                .unwrap()
                .ends_with("(500 characters)")
        );
        assert_eq!(shortened["sessionId"], "s");
    }

    #[test]
    fn since_takes_a_time_or_an_age() {
        assert_eq!(
            parse_since("2026-12-04T10:00:00Z").unwrap().to_rfc3339(),
            "2026-12-04T10:00:00+00:00"
        );
        let hour_ago = parse_since("1h").unwrap();
        assert!((Utc::now() - hour_ago).num_seconds().abs_diff(3600) < 5);
        for bad in ["", "h", "1y", "yesterday", "-1h"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
