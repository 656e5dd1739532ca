//! The jobs domain of the API: `createJob` (with the program uploaded or an existing
//! program id), `jobs`, `job`, `cancelJob`, and the `jobEvents` subscription.

use crate::auth::rules::Target;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Subscription, Upload};
use chrono::{DateTime, Utc};
use futures_util::Stream;

use super::errors::{ApiResult, coded, to_graphql};
use super::sessions::{BackendEnum, CoverageCollectorEnum, Session, app, read_upload};
use crate::backend::Collector;
use crate::jobs::service::{JobEvent, NewJob, ProgramSource};
use crate::store::JobRecord;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "JobState")]
pub enum JobStateEnum {
    Queued,
    Running,
    Passed,
    Failed,
    Error,
    TimedOut,
    Cancelled,
}

impl JobStateEnum {
    fn parse(text: &str) -> Self {
        match text {
            "QUEUED" => Self::Queued,
            "RUNNING" => Self::Running,
            "PASSED" => Self::Passed,
            "FAILED" => Self::Failed,
            "TIMED_OUT" => Self::TimedOut,
            "CANCELLED" => Self::Cancelled,
            _ => Self::Error,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Passed => "PASSED",
            Self::Failed => "FAILED",
            Self::Error => "ERROR",
            Self::TimedOut => "TIMED_OUT",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// A CI run: a program on a board, judged by rules.
pub struct Job(JobRecord);

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

#[Object]
impl Job {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn state(&self) -> JobStateEnum {
        JobStateEnum::parse(&self.0.state)
    }

    /// Why it did not pass.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }

    async fn exit_code(&self) -> Option<i32> {
        self.0.exit_code
    }

    /// The node that ran (or runs) it.
    async fn node(&self) -> Option<&str> {
        self.0.node.as_deref()
    }

    /// How many times a node started it (more than 1 after a node died mid-run).
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }

    async fn backend(&self) -> BackendEnum {
        BackendEnum::from_stored(&self.0.backend)
    }

    async fn board_template(&self) -> ID {
        ID(self.0.board_id.clone())
    }

    async fn program_name(&self) -> &str {
        &self.0.program_name
    }

    async fn program_sha256(&self) -> &str {
        &self.0.program_sha256
    }

    async fn timeout_seconds(&self) -> i32 {
        self.0.timeout_seconds
    }

    async fn expect_exit_code(&self) -> Option<i32> {
        self.0.expect_exit_code
    }

    async fn expect_uart(&self) -> Vec<String> {
        list(&self.0.expect_uart)
    }

    async fn forbid_uart(&self) -> Vec<String> {
        list(&self.0.forbid_uart)
    }

    async fn coverage(&self) -> bool {
        self.0.coverage
    }

    /// How coverage is recorded; null without coverage.
    async fn coverage_collector(&self) -> Option<CoverageCollectorEnum> {
        self.0
            .coverage
            .then(|| Collector::parse(&self.0.coverage_collector).into())
    }

    async fn deterministic(&self) -> bool {
        self.0.deterministic
    }

    async fn keep_on_failure(&self) -> bool {
        self.0.keep_on_failure
    }

    async fn record(&self) -> bool {
        self.0.record
    }

    /// The recording of the job's run (with `record`).
    async fn recording(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<super::recordings::Recording>> {
        let Some(session) = &self.0.session_id else {
            return Ok(None);
        };
        let recording = app(ctx).sessions.latest_recording(session).await?;
        Ok(recording.map(super::recordings::Recording))
    }

    /// The snapshot the job started in, when it did not boot.
    async fn from_snapshot(&self) -> Option<ID> {
        self.0.from_snapshot.clone().map(ID)
    }

    /// The session the job ran in (kept for coverage and inspection).
    async fn session(&self, ctx: &Context<'_>) -> ApiResult<Option<Session>> {
        match &self.0.session_id {
            Some(id) => Ok(Some(Session(app(ctx).sessions.get(id).await?))),
            None => Ok(None),
        }
    }

    /// The console output of the run.
    async fn uart_log(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        Ok(app(ctx).jobs.artifact(&self.0.id, "console.log").await?)
    }

    /// JUnit XML: one test case per rule.
    async fn junit(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        Ok(app(ctx).jobs.artifact(&self.0.id, "junit.xml").await?)
    }

    /// LCOV, when the job ran with coverage.
    async fn lcov(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        Ok(app(ctx).jobs.artifact(&self.0.id, "coverage.info").await?)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

#[derive(InputObject)]
pub struct CreateJobInput {
    name: String,
    #[graphql(default_with = "BackendEnum::Qemu")]
    backend: BackendEnum,
    board_template: ID,
    /// The ELF, uploaded with the request (GraphQL multipart request spec)...
    program: Option<Upload>,
    /// ...or a program uploaded to a session before.
    program_id: Option<ID>,
    #[graphql(default = 60)]
    timeout_seconds: i32,
    /// The exit code that passes; without it 0 passes when the program exits, and a
    /// program that never exits passes once every `expectUart` pattern was seen.
    expect_exit_code: Option<i32>,
    /// Regular expressions the console must show, in order.
    #[graphql(default)]
    expect_uart: Vec<String>,
    /// Regular expressions the console must never show.
    #[graphql(default)]
    forbid_uart: Vec<String>,
    /// Text written to the console once the program first prints (with
    /// `fromSnapshot`: as soon as it resumes).
    uart_input: Option<String>,
    #[graphql(default = false)]
    coverage: bool,
    /// How coverage is recorded (with `coverage`): HIT_COUNTS needs
    /// `capabilities.hitCounts`, else the run falls back to IN_ASM.
    #[graphql(default_with = "CoverageCollectorEnum::InAsm")]
    coverage_collector: CoverageCollectorEnum,
    /// Virtual time counted in instructions, a fixed clock start: the same program and
    /// input give the same console, exit code and coverage in every run (several times
    /// slower under TCG).
    #[graphql(default = false)]
    deterministic: bool,
    /// Start in this snapshot instead of booting (boot once, snapshot after init, run
    /// many jobs from there). The program may be left out; the snapshot's session gives
    /// board, coverage and determinism. The job runs on the node that holds the snapshot.
    from_snapshot: Option<ID>,
    /// A failing run keeps its failure point (a snapshot before a failing exit, at the
    /// output that broke a rule, at the time-out), for `debugJob`.
    #[graphql(default = false)]
    keep_on_failure: bool,
    /// Record the run (see `CreateSessionInput.record`): `debugJob` of a failed recorded
    /// job replays it to the failure, and reverse execution walks back to the cause.
    #[graphql(default = false)]
    record: bool,
}

/// One page of jobs, newest first.
#[derive(SimpleObject)]
#[graphql(name = "JobPage")]
pub struct JobPage {
    nodes: Vec<Job>,
    /// Pass as `after` for the next page.
    end_cursor: Option<ID>,
    has_next_page: bool,
}

#[derive(SimpleObject)]
#[graphql(name = "JobEvent")]
pub struct JobEventObject {
    job_id: ID,
    state: JobStateEnum,
    /// What happened: "queued", "running on NODE (attempt N)", the verdict's reason.
    progress: String,
    node: String,
    at: DateTime<Utc>,
}

impl JobEventObject {
    /// The job's state as an event, for a subscriber that may have missed the real one.
    fn from_record(job: &JobRecord) -> Self {
        Self {
            job_id: ID(job.id.clone()),
            state: JobStateEnum::parse(&job.state),
            progress: job
                .failure_reason
                .clone()
                .unwrap_or_else(|| job.state.to_lowercase()),
            node: job.node.clone().unwrap_or_default(),
            at: Utc::now(),
        }
    }
}

impl From<JobEvent> for JobEventObject {
    fn from(event: JobEvent) -> Self {
        Self {
            job_id: ID(event.job_id),
            state: JobStateEnum::parse(&event.state),
            progress: event.message,
            node: event.node,
            at: event.at,
        }
    }
}

#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    async fn job(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Job> {
        Ok(Job(app(ctx).jobs.get(&id).await?))
    }

    async fn jobs(
        &self,
        ctx: &Context<'_>,
        state: Option<JobStateEnum>,
        #[graphql(default = 20)] first: i32,
        after: Option<ID>,
    ) -> ApiResult<JobPage> {
        if !(1..=500).contains(&first) {
            return Err(coded("BAD_INPUT", "first must be between 1 and 500").into());
        }
        // An operator's list is its own jobs (as if no other existed).
        let identity = crate::auth::guard::identity(ctx);
        let owned_by = identity.confined_to();
        let mut records = app(ctx)
            .jobs
            .list(
                state.map(JobStateEnum::as_str),
                owned_by,
                first as u64 + 1,
                after.as_ref().map(|a| a.as_str()),
            )
            .await?;
        let has_next_page = records.len() > first as usize;
        records.truncate(first as usize);
        Ok(JobPage {
            end_cursor: records.last().map(|j| ID(j.id.clone())),
            nodes: records.into_iter().map(Job).collect(),
            has_next_page,
        })
    }
}

#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Queues a job; it runs on the first node with a free worker.
    async fn create_job(&self, ctx: &Context<'_>, input: CreateJobInput) -> ApiResult<Job> {
        let app = app(ctx);
        if let Some(snapshot) = &input.from_snapshot {
            crate::auth::guard::check_input(ctx, Target::Snapshot("fromSnapshot"), snapshot)
                .await?;
        }
        let program = match (input.program, input.program_id) {
            (Some(upload), None) => {
                let (name, bytes) = read_upload(ctx, upload, app.config.max_upload_bytes).await?;
                ProgramSource::Upload { name, bytes }
            }
            (None, Some(id)) => {
                crate::auth::guard::check_input(ctx, Target::Program("programId"), &id).await?;
                ProgramSource::Existing { program_id: id.0 }
            }
            (None, None) if input.from_snapshot.is_some() => ProgramSource::OfSnapshot,
            _ => {
                return Err(coded("BAD_INPUT", "give exactly one of program and programId").into());
            }
        };
        let record = app
            .jobs
            .create(NewJob {
                name: input.name,
                backend: input.backend.into(),
                board_id: input.board_template.0,
                program,
                timeout_seconds: u64::try_from(input.timeout_seconds).unwrap_or(0),
                expect_exit_code: input.expect_exit_code,
                expect_uart: input.expect_uart,
                forbid_uart: input.forbid_uart,
                uart_input: input.uart_input,
                coverage: input.coverage.then_some(input.coverage_collector.into()),
                deterministic: input.deterministic,
                from_snapshot: input.from_snapshot.map(|id| id.0),
                keep_on_failure: input.keep_on_failure,
                record: input.record,
                owner: crate::auth::guard::identity(ctx).owner(),
            })
            .await?;
        Ok(Job(record))
    }

    /// Opens a failed job's session PAUSED at its failure point (kept with
    /// `keepOnFailure`), attachable with GDB and DAP. INVALID_STATE when it kept none.
    async fn debug_job(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Session> {
        Ok(Session(app(ctx).jobs.debug(&id).await?))
    }

    /// Stops a queued or running job wherever it runs.
    async fn cancel_job(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Job> {
        Ok(Job(app(ctx).jobs.cancel(&id).await?))
    }
}

#[derive(Default)]
pub struct JobSubscription;

#[Subscription]
impl JobSubscription {
    /// Progress of one job, from any node, until it ends.
    async fn job_events(
        &self,
        ctx: &Context<'_>,
        job_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = JobEventObject> + use<>> {
        crate::auth::guard::check(ctx, "jobEvents", &[&job_id]).await?;
        let app = app(ctx).clone();
        let mut events = app.jobs.subscribe();
        let job = app.jobs.get(&job_id).await.map_err(to_graphql)?;
        let shutdown = app.shutdown.clone();
        Ok(async_stream::stream! {
            // The state at subscription time, so a late subscriber knows where it is.
            let ended = crate::jobs::service::JobService::is_terminal(&job.state);
            yield JobEventObject::from_record(&job);
            if ended {
                return;
            }
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => break,
                    next = events.recv() => next,
                };
                match next {
                    Ok(event) if event.job_id == job.id => {
                        let ended = crate::jobs::service::JobService::is_terminal(&event.state);
                        yield JobEventObject::from(event);
                        if ended {
                            break;
                        }
                    }
                    Ok(_) => {}
                    // Events were missed (or lost by a reconnecting bus): the database
                    // says whether the job ended meanwhile.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Ok(now) = app.jobs.get(&job.id).await
                            && crate::jobs::service::JobService::is_terminal(&now.state)
                        {
                            yield JobEventObject::from_record(&now);
                            break;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}
