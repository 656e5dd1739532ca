//! `virserver serve`: bind, serve until SIGTERM or Ctrl-C, then stop every emulator
//! before exiting so that no QEMU outlives the server.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api;
use crate::app::App;
use crate::config::Config;

pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    config.prepare_data_dir()?;
    let listener = TcpListener::bind(config.listen).await?;
    let app = App::start(config).await?;
    let schema = api::schema::build(app.clone());
    let router = api::http::router(schema, app.clone());
    let address = listener.local_addr()?;
    // Tests and scripts read this line to find the port when listening on port 0.
    println!("virserver listening on http://{address}");
    tracing::info!(%address, data_dir = %app.config.data_dir.display(), "serving");
    let shutdown_app: Arc<App> = app.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: stopping every emulator");
            shutdown_app.shutdown.cancel();
        })
        .await?;
    app.stop().await;
    tracing::info!("stopped");
    Ok(())
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
