//! `virserver serve`: bind, serve until SIGTERM or Ctrl-C, then stop every emulator
//! before exiting so that no QEMU outlives the server. The API listener speaks plain
//! HTTP or, with a certificate, HTTPS (`tls`); `--metrics-listen` adds a second,
//! plain listener for `/metrics` only.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api;
use crate::app::App;
use crate::config::Config;
use crate::tls;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    serve_then(config, |_, _| async { Ok(()) }).await
}

/// [`serve`], running `ready` once the server listens; the server stops when it fails.
pub async fn serve_then<F, R>(mut config: Config, ready: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<App>, SocketAddr) -> R,
    R: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    config.prepare_data_dir()?;
    // Certificate problems stop the server before it opens the database or listens.
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let listener = TcpListener::bind(config.listen).await?;
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(TcpListener::bind(address).await?),
        None => None,
    };
    let app = App::start(config).await?;
    let schema = api::schema::build(app.clone());
    let router = api::http::router(schema, app.clone());
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Tests and scripts read this line to find the port when listening on port 0.
    println!("virserver listening on {scheme}://{address}");
    tracing::info!(%address, scheme, data_dir = %app.config.data_dir.display(), auth = %app.config.auth_mode(), "serving");
    let ready = ready(app.clone(), address);
    let failed = app.shutdown.clone();
    let ready = tokio::spawn(async move {
        let result = ready.await;
        if result.is_err() {
            failed.cancel();
        }
        result
    });
    let metrics_server = metrics_listener.map(|listener| {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, "serving /metrics without authentication");
        }
        let router = api::metrics::metrics_only(app.clone());
        let stop = app.shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        })
    });
    let shutdown_app: Arc<App> = app.clone();
    let shutdown = async move {
        tokio::select! {
            () = wait_for_signal() => {}
            () = shutdown_app.shutdown.cancelled() => {}
        }
        tracing::info!("shutting down: stopping every emulator");
        shutdown_app.shutdown.cancel();
    };
    match tls {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    if let Some(server) = metrics_server {
        server.await??;
    }
    app.stop().await;
    tracing::info!("stopped");
    match ready.is_finished() {
        true => ready.await?,
        false => Ok(()),
    }
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
