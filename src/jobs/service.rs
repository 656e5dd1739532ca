//! The job service: accepts jobs, queues them (embedded or Redis Streams), runs them on
//! this node's workers, and records verdicts and artifacts.
//!
//! Delivery is at-least-once: a job held by a node that died is reclaimed and run
//! again. Completion is therefore idempotent: a job is claimed as a numbered attempt,
//! and only the attempt that still holds it can record its end (a conditional update
//! in `store`). Cancelling marks the job in the database (so every node sees it) and
//! stops it where it runs: at once on this node, through the event bus on others, and
//! at the next heartbeat in any case.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use virserver_queue::{Delivery, JobQueue, QueueError, QueueLength};

use super::rules::{Rules, Verdict};
use super::runner::{self, JobSpec, Progress};
use crate::backend::{BackendKind, Backends, Collector};
use crate::catalog::Catalog;
use crate::programs::validate_elf;
use crate::sessions::{SessionError, SessionService};
use crate::store::{JobEnd, JobRecord, SessionRecord, Store, StoreError, TERMINAL_STATES};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job '{0}'")]
    NotFound(String),
    #[error("{0}")]
    BadInput(String),
    #[error("job '{0}' has already ended")]
    Ended(String),
    #[error("the queue holds {limit} jobs, its limit: try again later")]
    QueueFull { limit: u64 },
    #[error(
        "{user} has {count} jobs waiting or running, the most --max-queued-jobs-per-user \
         allows ({limit}): wait for one to end or cancel one"
    )]
    UserQuota {
        user: String,
        count: u64,
        limit: u64,
    },
    #[error("the job queue is unavailable: {0}")]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A job as submitted.
pub struct NewJob {
    pub name: String,
    pub backend: BackendKind,
    pub board_id: String,
    pub program: ProgramSource,
    pub timeout_seconds: u64,
    pub expect_exit_code: Option<i32>,
    pub expect_uart: Vec<String>,
    pub forbid_uart: Vec<String>,
    pub uart_input: Option<String>,
    /// Record coverage with this collector.
    pub coverage: Option<Collector>,
    pub deterministic: bool,
    /// Start in this snapshot instead of booting: its program, board, coverage and
    /// determinism are the job's.
    pub from_snapshot: Option<String>,
    pub keep_on_failure: bool,
    /// Record the run for replay.
    pub record: bool,
    /// The user it belongs to (`auth`); `None` when auth is off.
    pub owner: Option<String>,
}

pub enum ProgramSource {
    Upload {
        name: String,
        bytes: Vec<u8>,
    },
    Existing {
        program_id: String,
    },
    /// The program of `NewJob::from_snapshot`.
    OfSnapshot,
}

/// What subscribers of `jobEvents` see; crosses nodes as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: String,
    pub state: String,
    pub message: String,
    pub node: String,
    pub at: DateTime<Utc>,
}

/// Messages on the cross-node bus.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BusMessage {
    Event(JobEvent),
    Cancel { job_id: String },
}

const BUS_CHANNEL: &str = "virserver:jobs";
pub const MAX_TIMEOUT_SECONDS: u64 = 24 * 3600;

pub struct JobServiceConfig {
    pub node: String,
    pub max_concurrent: usize,
    pub max_queued: u64,
    /// Jobs one user may have waiting or running (`None`: no limit).
    pub max_queued_per_user: Option<u64>,
    pub heartbeat: Duration,
    pub max_upload_bytes: u64,
    /// A job handed out more often than this (each node that took it died or lost it)
    /// is given up as ERROR instead of taking down node after node.
    pub max_deliveries: u64,
}

pub struct JobService {
    store: Store,
    sessions: Arc<SessionService>,
    catalog: Arc<Catalog>,
    backends: Backends,
    queue: Arc<dyn JobQueue>,
    bus: Option<Arc<virserver_queue::RedisEvents>>,
    events: broadcast::Sender<JobEvent>,
    config: JobServiceConfig,
    running: Mutex<HashMap<String, CancellationToken>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl JobService {
    pub fn new(
        store: Store,
        sessions: Arc<SessionService>,
        catalog: Arc<Catalog>,
        backends: Backends,
        queue: Arc<dyn JobQueue>,
        bus: Option<Arc<virserver_queue::RedisEvents>>,
        config: JobServiceConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            sessions,
            catalog,
            backends,
            queue,
            bus,
            events: broadcast::channel(1024).0,
            config,
            running: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        })
    }

    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// Which queue this node uses (`embedded` or `redis`) and how long it is.
    pub async fn queue_length(&self) -> Result<(&'static str, QueueLength), QueueError> {
        let kind = if self.bus.is_some() {
            "redis"
        } else {
            "embedded"
        };
        Ok((kind, self.queue.len().await?))
    }

    /// Starts the workers (and the bus listener). `requeue` re-enqueues the jobs the
    /// database says are unfinished: the embedded queue's persistence.
    pub async fn start(self: &Arc<Self>, requeue: bool) -> Result<(), JobError> {
        if requeue {
            for id in self.store.job_ids_in(&["QUEUED", "RUNNING"]).await? {
                self.queue.enqueue(&id).await?;
            }
        }
        if let Some(bus) = &self.bus {
            let mut messages = bus.subscribe(BUS_CHANNEL).await?;
            let service = self.clone();
            self.tracker.spawn(async move {
                use futures_util::StreamExt;
                loop {
                    let message = tokio::select! {
                        () = service.shutdown.cancelled() => break,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    match serde_json::from_str::<BusMessage>(&message) {
                        Ok(BusMessage::Event(event)) => {
                            let _ = service.events.send(event);
                        }
                        Ok(BusMessage::Cancel { job_id }) => service.cancel_local(&job_id),
                        Err(error) => tracing::warn!(%error, "bad message on the job bus"),
                    }
                }
            });
        }
        for _ in 0..self.config.max_concurrent.max(1) {
            let service = self.clone();
            self.tracker.spawn(async move { service.work().await });
        }
        Ok(())
    }

    /// Stops taking jobs and waits for the workers. Jobs running here are left
    /// unfinished: they run again (after a restart, or on another node).
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    pub async fn get(&self, id: &str) -> Result<JobRecord, JobError> {
        let not_found = || JobError::NotFound(id.to_owned());
        if !crate::store::is_record_id(id) {
            return Err(not_found());
        }
        self.store.job(id).await?.ok_or_else(not_found)
    }

    /// A page of jobs, newest first; `owned_by` keeps only one user's.
    pub async fn list(
        &self,
        state: Option<&str>,
        owned_by: Option<&str>,
        first: u64,
        after: Option<&str>,
    ) -> Result<Vec<JobRecord>, JobError> {
        // A cursor that names no job is ignored, whatever its shape.
        let after = after.filter(|id| crate::store::is_record_id(id));
        Ok(self.store.jobs(state, owned_by, first, after).await?)
    }

    pub async fn artifact(&self, id: &str, name: &str) -> Result<Option<String>, JobError> {
        Ok(self.store.artifact(id, name).await?)
    }

    pub async fn create(&self, mut job: NewJob) -> Result<JobRecord, JobError> {
        let name = job.name.trim().to_owned();
        if name.is_empty() || name.len() > 200 {
            return Err(JobError::BadInput(
                "name must be 1 to 200 characters".into(),
            ));
        }
        if job.timeout_seconds == 0 || job.timeout_seconds > MAX_TIMEOUT_SECONDS {
            return Err(JobError::BadInput(format!(
                "timeoutSeconds must be between 1 and {MAX_TIMEOUT_SECONDS}"
            )));
        }
        Rules::new(&job.expect_uart, &job.forbid_uart, job.expect_exit_code)
            .map_err(|error| JobError::BadInput(error.to_string()))?;
        let snapshot = match &job.from_snapshot {
            Some(_) if job.record => {
                return Err(JobError::BadInput(
                    "a job from a snapshot cannot be recorded: a recording starts at reset".into(),
                ));
            }
            Some(id) => {
                let snapshot = self.sessions.snapshot(id).await?;
                let source = self.sessions.get(&snapshot.session_id).await?;
                job.board_id = source.board_id.clone();
                job.coverage = source
                    .coverage
                    .then(|| Collector::parse(&source.coverage_collector));
                job.deterministic = source.deterministic;
                Some(snapshot)
            }
            None => None,
        };
        let board = self
            .catalog
            .board(&job.board_id)
            .await
            .map_err(SessionError::from)?
            .board;
        let backend = self.backends.get(job.backend).ok_or_else(|| {
            JobError::BadInput(format!("backend {} is not built in", job.backend.as_str()))
        })?;
        backend.supports_board(&board).map_err(SessionError::from)?;
        let (program_name, bytes) = match job.program {
            ProgramSource::Upload { name, bytes } => (name, bytes),
            ProgramSource::Existing { program_id } => {
                let program = self.sessions.program(&program_id).await?;
                let bytes = self.sessions.program_bytes(&program).await?;
                (program.name, bytes)
            }
            ProgramSource::OfSnapshot => {
                let snapshot = snapshot.as_ref().ok_or_else(|| {
                    JobError::BadInput("give a program, a programId or fromSnapshot".into())
                })?;
                let program = self.sessions.program(&snapshot.program_id).await?;
                let bytes = self.sessions.program_bytes(&program).await?;
                (program.name, bytes)
            }
        };
        if bytes.len() as u64 > self.config.max_upload_bytes {
            return Err(SessionError::TooLarge {
                what: "the program",
                size: bytes.len() as u64,
                limit: self.config.max_upload_bytes,
            }
            .into());
        }
        let summary = validate_elf(&bytes, &board).map_err(SessionError::from)?;
        if let Some(snapshot) = &snapshot {
            let program = self.sessions.program(&snapshot.program_id).await?;
            if program.sha256 != summary.sha256 {
                return Err(JobError::BadInput(format!(
                    "snapshot '{}' runs program {} ({}), not this one: leave the program out",
                    snapshot.id, program.name, program.sha256
                )));
            }
        }
        if let Some(limit) = self.config.max_queued_per_user {
            let owner = job.owner.as_deref();
            let count = self
                .store
                .count_owned_jobs_in(owner, &["QUEUED", "RUNNING"])
                .await?;
            if count >= limit {
                return Err(JobError::UserQuota {
                    user: owner.unwrap_or("local").to_owned(),
                    count,
                    limit,
                });
            }
        }
        let queued = self.store.count_jobs_in(&["QUEUED", "RUNNING"]).await?;
        if queued >= self.config.max_queued {
            return Err(JobError::QueueFull {
                limit: self.config.max_queued,
            });
        }
        self.store.put_blob(&summary.sha256, &bytes).await?;
        let record = JobRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            backend: job.backend.as_str().to_owned(),
            board_id: board.id,
            program_sha256: summary.sha256,
            program_name,
            timeout_seconds: job.timeout_seconds as i32,
            expect_exit_code: job.expect_exit_code,
            expect_uart: serde_json::to_string(&job.expect_uart).unwrap_or_default(),
            forbid_uart: serde_json::to_string(&job.forbid_uart).unwrap_or_default(),
            uart_input: job.uart_input,
            coverage: job.coverage.is_some(),
            coverage_collector: job.coverage.unwrap_or(Collector::InAsm).as_str().to_owned(),
            deterministic: job.deterministic,
            from_snapshot: job.from_snapshot,
            keep_on_failure: job.keep_on_failure,
            record: job.record,
            state: "QUEUED".to_owned(),
            failure_reason: None,
            exit_code: None,
            node: None,
            attempt: 0,
            session_id: None,
            owner: job.owner,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        };
        self.store.insert_job(record.clone()).await?;
        if let Err(error) = self.queue.enqueue(&record.id).await {
            let reason = format!("could not be queued: {error}");
            let _ = self.store.fail_unqueued_job(&record.id, reason).await;
            return Err(match error {
                QueueError::Full { .. } => JobError::QueueFull {
                    limit: self.config.max_queued,
                },
                other => other.into(),
            });
        }
        self.emit(&record.id, "QUEUED", "queued".into()).await;
        Ok(record)
    }

    /// The job's session, PAUSED at the failure point the job kept.
    pub async fn debug(&self, id: &str) -> Result<SessionRecord, JobError> {
        let job = self.get(id).await?;
        if !TERMINAL_STATES.contains(&job.state.as_str()) {
            return Err(JobError::BadInput(format!(
                "job '{id}' is {}: debug it once it has failed",
                job.state
            )));
        }
        if job.record
            && let Some(session) = &job.session_id
            && let Some(recording) = self.sessions.latest_recording(session).await?
        {
            return Ok(self.sessions.replay_to_failure(&recording).await?);
        }
        let kept = super::failure::kept(&self.sessions, job.session_id.as_deref(), id).await?;
        Ok(self.sessions.restore_snapshot(&kept.id).await?)
    }

    pub async fn cancel(&self, id: &str) -> Result<JobRecord, JobError> {
        let job = self.get(id).await?;
        if !self.store.cancel_job(id).await? {
            return Err(JobError::Ended(job.id));
        }
        self.cancel_local(id);
        if let Some(bus) = &self.bus {
            let message = serde_json::to_string(&BusMessage::Cancel {
                job_id: id.to_owned(),
            })
            .unwrap_or_default();
            if let Err(error) = bus.publish(BUS_CHANNEL, &message).await {
                tracing::warn!(%error, "cancel not sent to other nodes; they see it at their next heartbeat");
            }
        }
        self.emit(id, "CANCELLED", "cancelled".into()).await;
        self.get(id).await
    }

    fn cancel_local(&self, id: &str) {
        if let Some(token) = self.lock_running().get(id) {
            token.cancel();
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn emit(&self, job_id: &str, state: &str, message: String) {
        let event = JobEvent {
            job_id: job_id.to_owned(),
            state: state.to_owned(),
            message,
            node: self.config.node.clone(),
            at: Utc::now(),
        };
        match &self.bus {
            // Through the bus only, so that every node (this one too) sees it once.
            Some(bus) => {
                let message =
                    serde_json::to_string(&BusMessage::Event(event.clone())).unwrap_or_default();
                if bus.publish(BUS_CHANNEL, &message).await.is_err() {
                    let _ = self.events.send(event);
                }
            }
            None => {
                let _ = self.events.send(event);
            }
        }
    }

    async fn work(self: Arc<Self>) {
        loop {
            let next = tokio::select! {
                () = self.shutdown.cancelled() => return,
                next = self.queue.next(&self.config.node, Duration::from_secs(1)) => next,
            };
            match next {
                Ok(Some(delivery)) => {
                    let span = tracing::info_span!("job", id = %delivery.job_id);
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = self.process(&delivery).instrument(span) => {}
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "job queue");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn process(&self, delivery: &Delivery) {
        let id = delivery.job_id.clone();
        let attempt = match self.store.claim_job(&id, &self.config.node).await {
            Ok(Some(attempt)) => attempt,
            Ok(None) => {
                // Finished or cancelled already (a duplicate delivery): nothing to do.
                let _ = self.queue.ack(delivery).await;
                return;
            }
            Err(error) => {
                tracing::error!(%error, job = %id, "cannot claim a job; it will be delivered again");
                return;
            }
        };
        let job = match self.get(&id).await {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(%error, job = %id, "claimed job vanished");
                return;
            }
        };
        if delivery.delivery_count > self.config.max_deliveries {
            self.give_up(delivery, &job, attempt).await;
            return;
        }
        let cancel = CancellationToken::new();
        self.lock_running().insert(id.clone(), cancel.clone());
        self.emit(
            &id,
            "RUNNING",
            format!("running on {} (attempt {attempt})", self.config.node),
        )
        .await;
        // The heartbeat ends only when another node took the job over; it then cancels
        // the run, which still powers its session off before returning.
        let heartbeat = self.heartbeat(delivery, &id, cancel.clone());
        let waited = (chrono::Utc::now() - job.created_at)
            .to_std()
            .unwrap_or_default();
        let started = std::time::Instant::now();
        let run = self.run(&job, &cancel);
        tokio::pin!(run);
        let mut taken_over = false;
        let outcome = tokio::select! {
            outcome = &mut run => outcome,
            () = heartbeat => {
                taken_over = true;
                run.await
            }
        };
        self.lock_running().remove(&id);
        if taken_over {
            // The job is the other node's now: its verdict is not ours to record.
            return;
        }
        if let Err(error) = self.record(&job, attempt, &outcome).await {
            tracing::error!(%error, job = %id, "cannot record a job's end; it will be delivered again");
            return;
        }
        crate::metrics::metrics().observe_job(outcome.verdict.state(), started.elapsed(), waited);
        if let Err(error) = self.queue.ack(delivery).await {
            tracing::warn!(%error, job = %id, "ack failed; a duplicate delivery will be skipped");
        }
    }

    /// Ends a job that keeps coming back without a verdict: every node that took it
    /// died or lost it (a firmware or board that kills its host, say).
    async fn give_up(&self, delivery: &Delivery, job: &JobRecord, attempt: i32) {
        let reason = format!(
            "handed out {} times and never finished (each node that took it died or lost \
             it); given up after job_max_deliveries = {}",
            delivery.delivery_count, self.config.max_deliveries
        );
        tracing::error!(job = %job.id, %reason, "giving up on a job");
        let outcome = runner::JobOutcome::error(reason);
        match self.record(job, attempt, &outcome).await {
            Ok(()) => {
                let _ = self.queue.ack(delivery).await;
            }
            Err(error) => {
                tracing::error!(%error, job = %job.id, "cannot record a job's end; it will be delivered again")
            }
        }
    }

    /// Keeps the delivery held while the job runs; cancels the job when it was
    /// cancelled (seen in the database) and ends when another node took it over.
    async fn heartbeat(&self, delivery: &Delivery, id: &str, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(self.config.heartbeat);
        interval.tick().await;
        loop {
            interval.tick().await;
            match self.queue.heartbeat(&self.config.node, delivery).await {
                Err(QueueError::NotHeld { .. }) => {
                    tracing::warn!(job = %id, "the job was taken over by another node");
                    cancel.cancel();
                    return;
                }
                Err(error) => tracing::warn!(%error, job = %id, "heartbeat failed"),
                Ok(()) => {}
            }
            if let Ok(Some(job)) = self.store.job(id).await
                && job.state == "CANCELLED"
            {
                cancel.cancel();
            }
        }
    }

    async fn run(&self, job: &JobRecord, cancel: &CancellationToken) -> runner::JobOutcome {
        let spec = match self.spec(job).await {
            Ok(spec) => spec,
            Err(error) => return runner::JobOutcome::error(error.to_string()),
        };
        let store = self.store.clone();
        let job_id = job.id.clone();
        let progress = move |progress: Progress| {
            if let Progress::SessionCreated(session) = progress {
                let store = store.clone();
                let job_id = job_id.clone();
                tokio::spawn(async move {
                    let _ = store.set_job_session(&job_id, &session).await;
                });
            }
        };
        runner::run(&self.sessions, &spec, cancel, &progress).await
    }

    async fn spec(&self, job: &JobRecord) -> Result<JobSpec, JobError> {
        let program = self.store.blob(&job.program_sha256).await?.ok_or_else(|| {
            JobError::BadInput(format!(
                "the program {} is missing from the database",
                job.program_sha256
            ))
        })?;
        let list = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
        Ok(JobSpec {
            name: job.name.clone(),
            backend: BackendKind::parse(&job.backend).unwrap_or(BackendKind::Qemu),
            board_id: job.board_id.clone(),
            program_name: job.program_name.clone(),
            program,
            timeout: Duration::from_secs(job.timeout_seconds.max(1) as u64),
            rules: Rules::new(
                &list(&job.expect_uart),
                &list(&job.forbid_uart),
                job.expect_exit_code,
            )
            .map_err(|e| JobError::BadInput(e.to_string()))?,
            uart_input: job.uart_input.clone(),
            coverage: job
                .coverage
                .then(|| Collector::parse(&job.coverage_collector)),
            deterministic: job.deterministic,
            from_snapshot: job.from_snapshot.clone(),
            keep_on_failure: job.keep_on_failure,
            record: job.record,
            owner: job.owner.clone(),
        })
    }

    async fn record(
        &self,
        job: &JobRecord,
        attempt: i32,
        outcome: &runner::JobOutcome,
    ) -> Result<(), JobError> {
        let mut artifacts = vec![("console.log", outcome.console.as_str())];
        if !outcome.junit.is_empty() {
            artifacts.push(("junit.xml", outcome.junit.as_str()));
        }
        if let Some(lcov) = &outcome.lcov {
            artifacts.push(("coverage.info", lcov.as_str()));
        }
        let state = outcome.verdict.state();
        let finished = self
            .store
            .finish_job(JobEnd {
                id: &job.id,
                attempt,
                state,
                exit_code: outcome.exit_code,
                reason: outcome.verdict.reason(),
                session_id: outcome.session_id.as_deref(),
                artifacts: &artifacts,
            })
            .await?;
        // `cancel` announced the CANCELLED state already.
        if finished && outcome.verdict != Verdict::Cancelled {
            let message = outcome.verdict.reason().unwrap_or_else(|| "passed".into());
            self.emit(&job.id, state, message).await;
        }
        Ok(())
    }

    /// Whether a state is final.
    pub fn is_terminal(state: &str) -> bool {
        TERMINAL_STATES.contains(&state)
    }
}
