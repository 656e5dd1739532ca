//! The coverage domain of the API: `coverage(sessionId:)` maps the session's latest
//! execution trace to source lines and returns the numbers, the per-line hits, and the
//! LCOV and Cobertura documents.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, Object, SimpleObject};

use super::errors::{ApiResult, coded};
use super::sessions::app;
use crate::coverage::{CoverageReport, PathFilter};

#[derive(SimpleObject)]
#[graphql(name = "LineHits")]
pub struct LineHitsObject {
    line: i32,
    hits: i64,
}

#[derive(SimpleObject)]
#[graphql(name = "FunctionHits")]
pub struct FunctionHitsObject {
    name: String,
    line: i32,
    hits: i64,
}

#[derive(SimpleObject)]
#[graphql(name = "FileCoverage")]
pub struct FileCoverageObject {
    path: String,
    lines_found: i32,
    lines_hit: i32,
    functions_found: i32,
    functions_hit: i32,
    lines: Vec<LineHitsObject>,
    functions: Vec<FunctionHitsObject>,
}

/// Line and function coverage. Hits are 1 for executed with the default collector
/// (QEMU's translation log records each block once).
pub struct CoverageReportObject(CoverageReport);

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[Object(name = "CoverageReport")]
impl CoverageReportObject {
    async fn lines_found(&self) -> i32 {
        count(self.0.totals().lines_found)
    }

    async fn lines_hit(&self) -> i32 {
        count(self.0.totals().lines_hit)
    }

    async fn functions_found(&self) -> i32 {
        count(self.0.totals().functions_found)
    }

    async fn functions_hit(&self) -> i32 {
        count(self.0.totals().functions_hit)
    }

    async fn files(&self) -> Vec<FileCoverageObject> {
        self.0
            .files
            .iter()
            .map(|(path, file)| {
                let totals = file.totals();
                FileCoverageObject {
                    path: path.clone(),
                    lines_found: count(totals.lines_found),
                    lines_hit: count(totals.lines_hit),
                    functions_found: count(totals.functions_found),
                    functions_hit: count(totals.functions_hit),
                    lines: lines(&file.lines),
                    functions: file
                        .functions
                        .iter()
                        .map(|f| FunctionHitsObject {
                            name: f.name.clone(),
                            line: f.line as i32,
                            hits: f.hits as i64,
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// The report as an LCOV tracefile.
    async fn lcov(&self) -> String {
        self.0.to_lcov()
    }

    /// The report as Cobertura XML.
    async fn cobertura(&self) -> String {
        crate::coverage::render(&self.0, crate::coverage::Format::Cobertura)
    }
}

fn lines(lines: &BTreeMap<u32, u64>) -> Vec<LineHitsObject> {
    lines
        .iter()
        .map(|(line, hits)| LineHitsObject {
            line: *line as i32,
            hits: *hits as i64,
        })
        .collect()
}

#[derive(Default)]
pub struct CoverageQuery;

#[Object]
impl CoverageQuery {
    /// Coverage of a session's latest run (created with `coverage: true`), or of a job.
    /// `include` / `exclude` are path globs (`*` matches `/` too), e.g. exclude
    /// `*/startup.c`.
    async fn coverage(
        &self,
        ctx: &Context<'_>,
        session_id: Option<ID>,
        job_id: Option<ID>,
        include: Option<Vec<String>>,
        exclude: Option<Vec<String>>,
    ) -> ApiResult<CoverageReportObject> {
        let app = app(ctx);
        let session_id = match (session_id, job_id) {
            (Some(session), None) => session.0,
            (None, Some(job)) => {
                let job = app.jobs.get(&job).await?;
                if !job.coverage {
                    let message = format!("job '{}' ran without coverage: true", job.id);
                    return Err(coded("INVALID_STATE", message).into());
                }
                let not_run = || coded("NOT_FOUND", format!("job '{}' has not run yet", job.id));
                job.session_id.clone().ok_or_else(not_run)?
            }
            _ => return Err(coded("BAD_INPUT", "give exactly one of sessionId and jobId").into()),
        };
        let (elf, trace) = app.sessions.coverage_inputs(&session_id).await?;
        let report = crate::coverage::report(
            &elf,
            &[trace],
            &PathFilter {
                include: include.unwrap_or_default(),
                exclude: exclude.unwrap_or_default(),
            },
        )
        .await?;
        Ok(CoverageReportObject(report))
    }
}
