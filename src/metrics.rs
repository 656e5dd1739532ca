//! Prometheus metrics (`/metrics`, OpenMetrics text from the `prometheus-client`
//! crate), every name prefixed `virserver_`.
//!
//! Two kinds of instruments. Events are counted where they happen (HTTP requests,
//! GraphQL operations, UART bytes, audit writes, job ends): those live in one
//! process-wide [`Metrics`], like the tracing subscriber, because they are recorded
//! deep inside services that a handle would otherwise have to be threaded through,
//! and a process serves one server. States (sessions by state, powered emulators and
//! their memory, jobs by state, queue length, GDB clients) are read when scraped
//! ([`render`]), so they can never drift from the truth; a scrape costs two grouped
//! queries and one `/proc` read per emulator.
//!
//! Sessions and emulators are this node's; jobs by state come from the database the
//! nodes share (the same on every node: aggregate them with `max`, not `sum`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::app::App;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// `query.sessions`, `mutation.createSession`: the first root field, or `invalid`.
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionStateLabels {
    pub state: String,
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    pub session: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub session: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: &'static str,
    pub part: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub version: &'static str,
    pub node: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_buckets() -> Histogram {
    // 0.5 ms to 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn round_trip_buckets() -> Histogram {
    // 50 us to 1.6 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

fn job_buckets() -> Histogram {
    // 0.1 s to about 14 min.
    Histogram::new(exponential_buckets(0.1, 2.0, 14))
}

/// Every instrument, registered once.
pub struct Metrics {
    registry: Registry,
    pub http_duration: Histograms<HttpLabels>,
    pub graphql_duration: Histograms<OperationLabels>,
    pub websocket_connections: Gauge,
    pub uart_bytes: Family<DirectionLabels, Counter>,
    pub audit_writes: Family<OutcomeLabels, Counter>,
    pub job_duration: Histograms<StateLabels>,
    pub job_queue_wait: Histogram,
    pub gateway_round_trip: Histogram,
    info: Family<InfoLabels, Gauge>,
    sessions: Family<SessionStateLabels, Gauge>,
    jobs: Family<StateLabels, Gauge>,
    queue_length: Family<QueueLabels, Gauge>,
    emulators_powered: Gauge,
    emulator_resident: Family<SessionLabels, Gauge>,
    gateway_clients: Family<SessionLabels, Gauge>,
    gateway_cache_reads: Family<CacheLabels, Gauge>,
    scrape_errors: Counter,
}

/// The process's instruments.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let metrics = Self {
            registry: Registry::with_prefix("virserver"),
            http_duration: Family::new_with_constructor(request_buckets),
            graphql_duration: Family::new_with_constructor(request_buckets),
            websocket_connections: Gauge::default(),
            uart_bytes: Family::default(),
            audit_writes: Family::default(),
            job_duration: Family::new_with_constructor(job_buckets),
            job_queue_wait: job_buckets(),
            gateway_round_trip: round_trip_buckets(),
            info: Family::default(),
            sessions: Family::default(),
            jobs: Family::default(),
            queue_length: Family::default(),
            emulators_powered: Gauge::default(),
            emulator_resident: Family::default(),
            gateway_clients: Family::default(),
            gateway_cache_reads: Family::default(),
            scrape_errors: Counter::default(),
        };
        let mut registry = metrics.registry;
        let r = &mut registry;
        r.register(
            "info",
            "The server's version and node name (always 1)",
            metrics.info.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP requests by route, method and status, until the response head",
            metrics.http_duration.clone(),
        );
        r.register(
            "graphql_operation_duration_seconds",
            "GraphQL queries and mutations by their first root field",
            metrics.graphql_duration.clone(),
        );
        r.register(
            "websocket_connections",
            "Open GraphQL WebSocket connections (subscribers)",
            metrics.websocket_connections.clone(),
        );
        r.register(
            "uart_bytes",
            "Console bytes: out from firmware, in from clients",
            metrics.uart_bytes.clone(),
        );
        r.register(
            "audit_writes",
            "Audit log entries written, by outcome of the write",
            metrics.audit_writes.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Jobs this node ran, from start to verdict, by final state",
            metrics.job_duration.clone(),
        );
        r.register(
            "job_queue_wait_seconds",
            "Time jobs waited between creation and a node starting them",
            metrics.job_queue_wait.clone(),
        );
        r.register(
            "sessions",
            "This node's sessions by state and backend",
            metrics.sessions.clone(),
        );
        r.register(
            "jobs",
            "Jobs by state (the shared database: the same on every node)",
            metrics.jobs.clone(),
        );
        r.register(
            "job_queue_length",
            "Jobs in the queue, waiting or in progress",
            metrics.queue_length.clone(),
        );
        r.register(
            "emulators_powered",
            "Emulator processes this node runs",
            metrics.emulators_powered.clone(),
        );
        r.register(
            "emulator_resident_bytes",
            "Resident memory of each powered emulator",
            metrics.emulator_resident.clone(),
        );
        r.register(
            "gateway_clients",
            "GDB clients attached to each powered session's gateway",
            metrics.gateway_clients.clone(),
        );
        r.register(
            "gateway_round_trip_seconds",
            "GDB clients' requests through the gateways, packet to answer (not resumes)",
            metrics.gateway_round_trip.clone(),
        );
        r.register(
            "gateway_cache_reads",
            "Each powered session's gateway reads since power-on: from its cache (hit) or the stub (miss)",
            metrics.gateway_cache_reads.clone(),
        );
        r.register(
            "scrape_errors",
            "Scrapes that could not read a state (see the log)",
            metrics.scrape_errors.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    pub fn observe_http(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_duration
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .observe(took.as_secs_f64());
    }

    pub fn count_uart(&self, direction: &'static str, bytes: usize) {
        self.uart_bytes
            .get_or_create(&DirectionLabels { direction })
            .inc_by(bytes as u64);
    }

    pub fn count_audit_write(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.audit_writes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn observe_job(&self, state: &str, ran: Duration, waited: Duration) {
        self.job_duration
            .get_or_create(&StateLabels {
                state: state.to_owned(),
            })
            .observe(ran.as_secs_f64());
        self.job_queue_wait.observe(waited.as_secs_f64());
    }
}

/// What each gateway reports its clients' round trips to.
pub fn gateway_round_trips() -> virserver_gateway::RoundTripSink {
    virserver_gateway::RoundTripSink(std::sync::Arc::new(|took: Duration| {
        metrics().gateway_round_trip.observe(took.as_secs_f64());
    }))
}

/// Counts an open WebSocket connection for as long as it lives.
pub struct WebSocketGuard(());

impl WebSocketGuard {
    pub fn open() -> Self {
        metrics().websocket_connections.inc();
        Self(())
    }
}

impl Drop for WebSocketGuard {
    fn drop(&mut self) {
        metrics().websocket_connections.dec();
    }
}

/// Reads the states, then encodes everything.
pub async fn render(app: &App) -> String {
    let m = metrics();
    m.info.clear();
    m.info
        .get_or_create(&InfoLabels {
            version: env!("CARGO_PKG_VERSION"),
            node: app.config.node_name.clone(),
        })
        .set(1);
    match app.store.session_census(&app.config.node_name).await {
        Ok(rows) => {
            m.sessions.clear();
            for (state, backend, count) in rows {
                m.sessions
                    .get_or_create(&SessionStateLabels { state, backend })
                    .set(count);
            }
        }
        Err(error) => scrape_failed(&error),
    }
    match app.store.job_census().await {
        Ok(rows) => {
            m.jobs.clear();
            for (state, count) in rows {
                m.jobs.get_or_create(&StateLabels { state }).set(count);
            }
        }
        Err(error) => scrape_failed(&error),
    }
    match app.jobs.queue_length().await {
        Ok((queue, length)) => {
            let set = |part, value: u64| {
                m.queue_length
                    .get_or_create(&QueueLabels { queue, part })
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            };
            set("waiting", length.waiting);
            set("in_progress", length.in_progress);
        }
        Err(error) => scrape_failed(&error),
    }
    let machines = app.sessions.powered_machines();
    m.emulators_powered.set(machines.len() as i64);
    m.emulator_resident.clear();
    m.gateway_clients.clear();
    m.gateway_cache_reads.clear();
    for machine in machines {
        let labels = SessionLabels {
            session: machine.session_id,
        };
        if let Some(bytes) = machine.pid.and_then(resident_bytes) {
            m.emulator_resident
                .get_or_create(&labels)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        if let Some(status) = machine.gateway {
            m.gateway_clients
                .get_or_create(&labels)
                .set(status.clients.len() as i64);
            for (result, reads) in [("hit", status.cache_hits), ("miss", status.cache_misses)] {
                m.gateway_cache_reads
                    .get_or_create(&CacheLabels {
                        session: labels.session.clone(),
                        result,
                    })
                    .set(i64::try_from(reads).unwrap_or(i64::MAX));
            }
        }
    }
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &m.registry) {
        // Writing into a String cannot fail; keep what was written.
        tracing::error!(%error, "cannot encode metrics");
    }
    text
}

fn scrape_failed(error: &dyn std::fmt::Display) {
    tracing::warn!(%error, "a metric could not be read");
    metrics().scrape_errors.inc();
}

/// A process's resident set, from `/proc/PID/statm` (in pages).
fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_resident_memory_is_read_and_a_missing_process_is_none() {
        let own = resident_bytes(std::process::id()).unwrap();
        assert!(own > 1024 * 1024, "{own}");
        assert_eq!(resident_bytes(u32::MAX), None);
    }

    #[test]
    fn names_carry_the_prefix_and_counters_their_suffix() {
        metrics().count_uart("out", 3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics().registry).unwrap();
        assert!(
            text.contains("virserver_uart_bytes_total{direction=\"out\"}"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("virserver_"), "{line}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// The exported names, as PromQL sees them (histograms as their series), with a
    /// series in every family (an empty one is not exported).
    fn exported() -> std::collections::BTreeSet<String> {
        let m = metrics();
        let state = || "S".to_owned();
        let session = || SessionLabels { session: state() };
        m.observe_http("/", "GET", 200, Duration::ZERO);
        m.graphql_duration
            .get_or_create(&OperationLabels { operation: state() })
            .observe(0.0);
        m.count_uart("in", 0);
        m.count_audit_write(true);
        m.observe_job("PASSED", Duration::ZERO, Duration::ZERO);
        m.info
            .get_or_create(&InfoLabels {
                version: "0",
                node: state(),
            })
            .set(0);
        m.sessions
            .get_or_create(&SessionStateLabels {
                state: state(),
                backend: state(),
            })
            .set(0);
        m.jobs.get_or_create(&StateLabels { state: state() }).set(0);
        m.queue_length
            .get_or_create(&QueueLabels {
                queue: "q",
                part: "p",
            })
            .set(0);
        m.emulator_resident.get_or_create(&session()).set(0);
        m.gateway_clients.get_or_create(&session()).set(0);
        m.gateway_cache_reads
            .get_or_create(&CacheLabels {
                session: state(),
                result: "hit",
            })
            .set(0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics().registry).unwrap();
        let mut names = std::collections::BTreeSet::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
                (words.next(), words.next(), words.next(), words.next())
            {
                let series: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_count", "_sum"],
                    _ => &[],
                };
                names.insert(name.to_owned());
                names.extend(series.iter().map(|suffix| format!("{name}{suffix}")));
            }
        }
        names
    }

    #[test]
    fn the_operations_guide_names_only_real_metrics() {
        let guide = include_str!("../docs/operations.md");
        let exported = exported();
        let used = regex::Regex::new(r"virserver_[a-z_]+").unwrap();
        let mut checked = 0;
        for name in used.find_iter(guide).map(|m| m.as_str()) {
            assert!(
                exported.contains(name),
                "docs/operations.md names {name}, not exported: {exported:?}"
            );
            checked += 1;
        }
        assert!(checked > 20, "{checked}");
        // The dashboard is JSON Grafana can import.
        let start = guide.find("```json\n").unwrap() + 8;
        let end = start + guide[start..].find("```").unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&guide[start..end]).unwrap();
        assert!(dashboard["panels"].as_array().unwrap().len() >= 6);
        // So are the alert rules YAML.
        let start = guide.find("```yaml\n").unwrap() + 8;
        let end = start + guide[start..].find("```").unwrap();
        let rules: serde_yaml::Value = serde_yaml::from_str(&guide[start..end]).unwrap();
        assert!(rules["groups"][0]["rules"].as_sequence().unwrap().len() >= 5);
    }
}
