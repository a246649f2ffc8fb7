//! What the run changed on a cluster, undone (chainsaw's finally): on an
//! error or an interrupt, from the journal, newest first; `--cleanup-only`
//! and the start of every run on an existing cluster replay what an
//! interrupted earlier run left.

use std::path::PathBuf;

use cbam_cluster::existing::{ExistingCluster, ExistingOptions};
use cbam_cluster::timeouts::Timeouts;
use kube::Client;

use crate::journal::{self, Journal};
use crate::run::error::LiveError;

/// Ctrl-C, or SIGTERM (a CI runner cancelling the job).
pub(crate) async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
/// Where the cleanup journals of existing clusters live.
fn journal_dir() -> PathBuf {
    std::env::var_os("CBAM_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/cbam-conformance"),
        PathBuf::from,
    )
}
/// The journal of an existing cluster, with what an interrupted earlier run
/// left undone already undone (a line per change, for the report).
pub(crate) async fn replayed_journal(
    cluster: &ExistingCluster,
    t: &Timeouts,
) -> Result<(Journal, Vec<String>), LiveError> {
    let journal = Journal::open(&journal::path_for(&journal_dir(), &cluster.server, &cluster.context))?;
    let leftovers: Vec<String> = journal.pending().iter().map(ToString::to_string).collect();
    let problems = journal.unwind(&cluster.client, t.namespace_cleanup).await;
    if !problems.is_empty() {
        return Err(LiveError::Leftovers(problems.join("; ")));
    }
    Ok((journal, leftovers))
}
/// `--cleanup-only`: undo what interrupted runs left on an existing
/// cluster, and nothing else. Returns what was undone.
pub async fn cleanup_only(existing: &ExistingOptions, t: &Timeouts) -> Result<Vec<String>, LiveError> {
    let (client, context, server) = cbam_cluster::existing::client(existing).await?;
    let journal = Journal::open(&journal::path_for(&journal_dir(), &server, &context))?;
    let leftovers: Vec<String> = journal.pending().iter().map(ToString::to_string).collect();
    let problems = journal.unwind(&client, t.namespace_cleanup).await;
    if problems.is_empty() { Ok(leftovers) } else { Err(LiveError::Leftovers(problems.join("; "))) }
}
/// Whatever the run did not undo itself (an error, an interrupt) is undone
/// now, newest first; the error says what happened to the cluster.
pub(crate) async fn finally(
    result: Result<(), LiveError>,
    journal: &Journal,
    client: &Client,
    t: &Timeouts,
) -> Result<(), LiveError> {
    let Err(error) = result else { return Ok(()) };
    let left: Vec<String> = journal.pending().iter().map(ToString::to_string).collect();
    let problems = journal.unwind(client, t.namespace_cleanup).await;
    let summary = match (left.is_empty(), problems.is_empty()) {
        (true, _) => "the run had changed nothing on the cluster".to_owned(),
        (false, true) => format!("undone: {}", left.join(", ")),
        (false, false) => format!("NOT undone (the next run or --cleanup-only retries): {}", problems.join("; ")),
    };
    Err(match error {
        LiveError::Interrupted(_) => LiveError::Interrupted(summary),
        other => {
            eprintln!("live tier: after the error below, {summary}");
            other
        }
    })
}
