//! `virserver bench auth`: what API keys cost a request. Two servers in this process,
//! one with auth off and one with `--auth required` (a key looked up by its hash in the
//! database, then the guard's rule and owner checks), each serving the real router on
//! loopback; the same GraphQL query is sent to each in turn over one keep-alive
//! connection, rounds alternating so both see the same machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{AuthMode, Role};
use crate::app::App;
use crate::config::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct AuthBench {
    /// Requests per side per round.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Rounds; the median round is reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

/// A server of its own on 127.0.0.1:0: its app, its base URL, its data dir.
async fn start(mode: AuthMode) -> anyhow::Result<(Arc<App>, String, std::path::PathBuf)> {
    let data_dir = std::env::temp_dir().join(format!(
        "virserver-bench-auth-{mode}-{}",
        std::process::id()
    ));
    let mut config = Config {
        data_dir: data_dir.clone(),
        auth: Some(mode),
        ..Config::default()
    };
    config.prepare_data_dir()?;
    let app = App::start(config).await?;
    let router = crate::api::http::router(crate::api::schema::build(app.clone()), app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    Ok((app, base, data_dir))
}

pub async fn auth(options: AuthBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.requests > 0 && options.rounds > 0,
        "--requests and --rounds must be at least 1"
    );
    let (open, open_url, open_dir) = start(AuthMode::Off).await?;
    let (keyed, keyed_url, keyed_dir) = start(AuthMode::Required).await?;
    let (_, token) = keyed.keys.create("bench", Role::Operator).await?;
    let client = super::bearer_client(None)?;
    let body = serde_json::json!({ "query": "{ sessions { id state } }" });
    let run = |url: String, token: Option<String>| {
        let client = client.clone();
        let body = body.clone();
        async move {
            let started = Instant::now();
            for _ in 0..options.requests {
                let mut request = client.post(format!("{url}/graphql")).json(&body);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let answer: serde_json::Value = request.send().await?.json().await?;
                anyhow::ensure!(answer.get("errors").is_none(), "{answer}");
            }
            Ok::<Duration, anyhow::Error>(started.elapsed())
        }
    };
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        eprint!("\rround {}/{}", round + 1, options.rounds);
        off.push(run(open_url.clone(), None).await?);
        on.push(run(keyed_url.clone(), Some(token.clone())).await?);
    }
    eprintln!();
    let per_second = |elapsed: Duration| options.requests as f64 / elapsed.as_secs_f64();
    let off = per_second(crate::bench::median(&mut off));
    let on = per_second(crate::bench::median(&mut on));
    println!(
        "{} requests x {} rounds of `{{ sessions {{ id state }} }}` over HTTP, median round:",
        options.requests, options.rounds
    );
    println!("  auth off       {off:>8.0} requests/s");
    println!(
        "  auth required  {on:>8.0} requests/s  ({:.3}x the time of auth off)",
        off / on
    );
    for (app, dir) in [(open, open_dir), (keyed, keyed_dir)] {
        app.stop().await;
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
