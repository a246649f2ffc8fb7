//! Serving and the SIGTERM sequence: unready at once, keep serving while
//! endpoints drain, stop accepting, let in-flight runs finish until the
//! deadline, exit inside the pod's 30 s grace period.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::app::{AppState, router};
use crate::config::Config;
use crate::logging::{Level, Logger};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::readiness::Readiness;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("install signal handlers")]
    Signal(#[source] std::io::Error),
    #[error("serve HTTP")]
    Serve(#[source] std::io::Error),
}

pub async fn serve(config: Config) -> Result<(), ServeError> {
    let logger = Logger { threshold: config.log_level };
    let metrics = Arc::new(Metrics::default());
    let pipeline = Arc::new(Pipeline::new(metrics.clone(), config.max_concurrent_runs, config.memory_budget_mib));
    let readiness = Readiness::new(config.volumes.clone(), &config.secrets);
    tokio::time::sleep(config.startup_delay).await;
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: config.listen.clone(), source })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    let secrets: serde_json::Map<String, serde_json::Value> =
        config.secrets.iter().map(|(k, set)| ((*k).to_owned(), if *set { "set" } else { "unset" }.into())).collect();
    logger.log(
        Level::Info,
        "listening",
        json!({
            "addr": local.to_string(), "env": config.app_env, "api_docs": config.api_docs,
            "tracing": config.tracing, "cors": config.cors.name, "secrets": secrets,
        }),
    );
    let state = Arc::new(AppState { config: config.clone(), logger, metrics, pipeline: pipeline.clone(), readiness });
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let drain_state = state.clone();
    let drain = tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        let since = Instant::now();
        drain_state.readiness.draining.store(true, Ordering::SeqCst);
        drain_state.logger.log(
            Level::Info,
            "shutdown: unready, draining",
            json!({ "delay_s": config.shutdown_delay.as_secs_f64() }),
        );
        // The deadline counts from SIGTERM, whatever serving still waits
        // for: a run held open by a waiting caller is aborted (and answered)
        // at the deadline, so the connection it holds ends inside the grace.
        let (abort, deadline) = (drain_state.pipeline.abort.clone(), config.shutdown_timeout);
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            abort.store(true, Ordering::SeqCst);
        });
        tokio::time::sleep(config.shutdown_delay).await;
        let _ = stop_tx.send(true);
        since
    });
    axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .await
        .map_err(ServeError::Serve)?;
    let since = drain.await.unwrap_or_else(|_| Instant::now());
    // In-flight runs may finish until the deadline; the timer aborts the rest.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    while pipeline.active() > 0 {
        tick.tick().await;
    }
    let aborted = state.metrics.runs_aborted.load(Ordering::Relaxed);
    state.logger.log(
        Level::Info,
        "shutdown: done",
        json!({ "aborted_runs": aborted, "elapsed_s": since.elapsed().as_secs_f64() }),
    );
    Ok(())
}
