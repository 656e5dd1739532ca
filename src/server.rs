//! `virserver serve`: bind, serve until SIGTERM or Ctrl-C, then stop every emulator
//! before exiting so that no QEMU outlives the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api;
use crate::app::App;
use crate::config::Config;

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
    let listener = TcpListener::bind(config.listen).await?;
    let app = App::start(config).await?;
    let schema = api::schema::build(app.clone());
    let router = api::http::router(schema, app.clone());
    let address = listener.local_addr()?;
    // Tests and scripts read this line to find the port when listening on port 0.
    println!("virserver listening on http://{address}");
    tracing::info!(%address, data_dir = %app.config.data_dir.display(), auth = %app.config.auth_mode(), "serving");
    let ready = ready(app.clone(), address);
    let failed = app.shutdown.clone();
    let ready = tokio::spawn(async move {
        let result = ready.await;
        if result.is_err() {
            failed.cancel();
        }
        result
    });
    let shutdown_app: Arc<App> = app.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = wait_for_signal() => {}
                () = shutdown_app.shutdown.cancelled() => {}
            }
            tracing::info!("shutting down: stopping every emulator");
            shutdown_app.shutdown.cancel();
        })
        .await?;
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
