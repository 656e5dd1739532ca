//! `virserver submit`: the same job as `virserver run`, sent to a server (or a cluster
//! behind one URL) through its GraphQL API. It polls the job, prints the console as it
//! grows, writes the reports, and exits with the same statuses as `run`.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::auth::graphql;

use super::cli::{ConsoleEcho, JobArgs, write_artifacts};

#[derive(Debug, clap::Args)]
pub struct SubmitCommand {
    #[command(flatten)]
    pub job: JobArgs,
    /// The server's base URL, e.g. http://ci-emulators:8080
    #[arg(long, env = "VIRSERVER_SERVER")]
    pub server: String,
    /// The API key's token, for a server with `--auth required`.
    #[arg(long, env = "VIRSERVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

const CREATE: &str = "mutation($i: CreateJobInput!) { createJob(input: $i) { id } }";
const POLL: &str = "query($id: ID!) { job(id: $id) { state failureReason session { uartText } } }";
const FINAL: &str =
    "query($id: ID!) { job(id: $id) { state failureReason exitCode node uartLog junit lcov } }";

pub async fn submit(command: SubmitCommand) -> anyhow::Result<u8> {
    let job = &command.job;
    let url = format!("{}/graphql", command.server.trim_end_matches('/'));
    let bytes =
        std::fs::read(&job.elf).with_context(|| format!("cannot read {}", job.elf.display()))?;
    let input = json!({
        "name": job.elf.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "backend": job.backend.as_str(),
        "boardTemplate": job.board,
        "program": null,
        "timeoutSeconds": job.timeout,
        "expectExitCode": job.expect_exit,
        "expectUart": job.expect,
        "forbidUart": job.forbid,
        "uartInput": job.input,
        "coverage": job.coverage.is_some(),
        "deterministic": job.deterministic,
        "keepOnFailure": job.keep_on_failure,
        "coverageCollector": crate::backend::Collector::from(job.collector).as_str(),
    });
    let form = reqwest::multipart::Form::new()
        .text(
            "operations",
            json!({ "query": CREATE, "variables": { "i": input } }).to_string(),
        )
        .text("map", json!({ "0": ["variables.i.program"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes).file_name("program.elf"),
        );
    let http = crate::auth::bearer_client(command.token.as_deref())?;
    let created = graphql(http.post(&url).multipart(form)).await?;
    let id = created["createJob"]["id"]
        .as_str()
        .context("no job id in the answer")?
        .to_owned();
    eprintln!("virserver: job {id} queued on {}", command.server);

    let console = ConsoleEcho::default();
    let mut seen = String::new();
    loop {
        let poll = json!({ "query": POLL, "variables": { "id": id } });
        let data = graphql(http.post(&url).json(&poll)).await?;
        // Null while another node runs the job: its console comes with the verdict.
        if let Some(uart) = data["job"]["session"]["uartText"].as_str() {
            console.write(new_output(&seen, uart));
            seen = uart.to_owned();
        }
        let state = data["job"]["state"].as_str().unwrap_or("");
        if !matches!(state, "QUEUED" | "RUNNING") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    console.end_line();
    let data = graphql(
        http.post(&url)
            .json(&json!({ "query": FINAL, "variables": { "id": id } })),
    )
    .await?;
    let job_data = &data["job"];
    write_artifacts(job, job_data["junit"].as_str(), job_data["lcov"].as_str())?;
    let state = job_data["state"].as_str().unwrap_or("ERROR");
    let reason = job_data["failureReason"]
        .as_str()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    eprintln!(
        "virserver: {state}{reason} (node {})",
        job_data["node"].as_str().unwrap_or("?")
    );
    Ok(match state {
        "PASSED" => 0,
        "FAILED" => 1,
        "TIMED_OUT" => 2,
        _ => 3,
    })
}

/// What `now` adds to `before`. The server keeps a bounded tail of the console, so the
/// two may overlap anywhere: the end of `before` is looked for in `now`.
fn new_output<'a>(before: &str, now: &'a str) -> &'a str {
    if let Some(rest) = now.strip_prefix(before) {
        return rest;
    }
    let mut cut = before.len().saturating_sub(256);
    while !before.is_char_boundary(cut) {
        cut += 1;
    }
    let tail = &before[cut..];
    match now.rfind(tail) {
        Some(at) if !tail.is_empty() => &now[at + tail.len()..],
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::new_output;

    #[test]
    fn new_output_survives_a_sliding_window() {
        assert_eq!(new_output("", "abc"), "abc");
        assert_eq!(new_output("abc", "abcdef"), "def");
        let before = format!("old{}", "y".repeat(300));
        let now = format!("{}NEW", "y".repeat(300));
        assert_eq!(
            new_output(&before, &now),
            "NEW",
            "the window slid by three bytes"
        );
        assert_eq!(new_output("abc", "abc"), "");
    }
}
