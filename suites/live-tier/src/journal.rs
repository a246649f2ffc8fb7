//! Every change a run makes to a cluster, registered before it is made and
//! undone in reverse order on every exit path (chainsaw's cleanup): the
//! normal path undoes each itself and strikes it off; an error, a panic,
//! Ctrl-C or SIGTERM leaves entries that `unwind` undoes. On a cluster the
//! harness did not create, the journal is also a file, so a run killed with
//! SIGKILL is undone by the next run (or `--cleanup-only`) before anything
//! else. Tool pods and ephemeral containers live in the environment's
//! namespace and go with it; port-forwards end with the process.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use cbam_cluster::wait::{Poll, WaitError, until};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use cbam_error_chain::render as chain;

/// One change to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    /// The run created this namespace: delete it (and wait until it is gone).
    DeleteNamespace { name: String },
    /// The run cordoned this node: make it schedulable again.
    Uncordon { node: String },
}

impl std::fmt::Display for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undo::DeleteNamespace { name } => write!(f, "delete namespace {name}"),
            Undo::Uncordon { node } => write!(f, "uncordon node {node}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("read the cleanup journal {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse the cleanup journal {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("write the cleanup journal {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("delete namespace {name}")]
    DeleteNamespace {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("see namespace {name} gone")]
    NamespaceStays {
        name: String,
        #[source]
        source: WaitError,
    },
    #[error("cordon node {node}")]
    Cordon {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("uncordon node {node}")]
    Uncordon {
        node: String,
        #[source]
        source: kube::Error,
    },
}

#[derive(Debug, Default)]
pub struct Journal {
    /// None: in memory only (a kit cluster the run removes anyway).
    path: Option<PathBuf>,
    entries: Mutex<Vec<Undo>>,
}

impl Journal {
    /// An in-memory journal.
    pub fn in_memory() -> Self {
        Journal::default()
    }

    /// The journal at `path`, with whatever an earlier run left in it.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let entries = match std::fs::read_to_string(path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|source| JournalError::Parse { path: path.to_owned(), source })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(JournalError::Read { path: path.to_owned(), source }),
        };
        Ok(Journal { path: Some(path.to_owned()), entries: Mutex::new(entries) })
    }

    /// What is still to undo, oldest first.
    pub fn pending(&self) -> Vec<Undo> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn persist(&self, entries: &[Undo]) -> Result<(), JournalError> {
        let Some(path) = &self.path else { return Ok(()) };
        let io = |source| JournalError::Write { path: path.clone(), source };
        if entries.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            };
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let temp = path.with_extension("partial");
        let text = serde_json::to_string_pretty(entries).unwrap_or_else(|_| "[]".into());
        std::fs::write(&temp, text).map_err(io)?;
        std::fs::rename(&temp, path).map_err(io)
    }

    /// Registers a change before it is made (a second registration of the
    /// same change is one entry).
    pub fn record(&self, undo: Undo) -> Result<(), JournalError> {
        let Ok(mut entries) = self.entries.lock() else { return Ok(()) };
        if !entries.contains(&undo) {
            entries.push(undo);
        }
        self.persist(&entries)
    }

    /// Strikes off a change the normal path has undone.
    pub fn done(&self, undo: &Undo) -> Result<(), JournalError> {
        let Ok(mut entries) = self.entries.lock() else { return Ok(()) };
        entries.retain(|e| e != undo);
        self.persist(&entries)
    }

    /// Undoes what is left, newest first; returns one line per problem.
    pub async fn unwind(&self, client: &Client, limit: Duration) -> Vec<String> {
        let mut problems = Vec::new();
        for undo in self.pending().into_iter().rev() {
            match perform(client, &undo, limit).await {
                Ok(()) => {
                    if let Err(e) = self.done(&undo) {
                        problems.push(format!("{undo}: done, but {}", chain(&e)));
                    }
                }
                Err(e) => problems.push(format!("{undo}: {}", chain(&e))),
            }
        }
        problems
    }
}

/// Deletes a namespace and waits until it is gone (pods first, at once:
/// the checks have observed the application's graceful shutdown already).
pub(crate) async fn delete_namespace(client: &Client, name: &str, limit: Duration) -> Result<(), JournalError> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), name);
    let _ = pods.delete_collection(&DeleteParams::background().grace_period(0), &Default::default()).await;
    let api: Api<Namespace> = Api::all(client.clone());
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(source) => return Err(JournalError::DeleteNamespace { name: name.to_owned(), source }),
    }
    until(&format!("namespace {name} deleted"), limit, || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await {
                Ok(None) => Poll::Done(()),
                Ok(Some(ns)) => Poll::Pending(format!("phase {:?}", ns.status.and_then(|s| s.phase))),
                Err(e) => Poll::failed(e.to_string(), &e),
            }
        }
    })
    .await
    .map_err(|source| JournalError::NamespaceStays { name: name.to_owned(), source })
}

pub(crate) async fn set_unschedulable(client: &Client, node: &str, unschedulable: bool) -> Result<(), JournalError> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(json!({"spec": {"unschedulable": unschedulable}})))
        .await
        .map(drop)
        .map_err(|source| {
            let node = node.to_owned();
            if unschedulable { JournalError::Cordon { node, source } } else { JournalError::Uncordon { node, source } }
        })
}

async fn perform(client: &Client, undo: &Undo, limit: Duration) -> Result<(), JournalError> {
    match undo {
        Undo::DeleteNamespace { name } => delete_namespace(client, name, limit).await,
        Undo::Uncordon { node } => set_unschedulable(client, node, false).await,
    }
}

/// Where the journal of the cluster behind `server` (and `context`) lives.
pub fn path_for(cache: &Path, server: &str, context: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let key = format!("{:x}", Sha256::digest(format!("{server}\n{context}").as_bytes()));
    cache.join("journal").join(format!("{}.json", &key[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_the_process_and_strikes_off_what_was_undone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal/x.json");
        let journal = Journal::open(&path).expect("open");
        let ns = Undo::DeleteNamespace { name: "gl-cbam".into() };
        let node = Undo::Uncordon { node: "agent1".into() };
        journal.record(ns.clone()).expect("record");
        journal.record(node.clone()).expect("record");
        journal.record(node.clone()).expect("record twice");
        // A run killed now leaves both for the next one, oldest first.
        assert_eq!(Journal::open(&path).expect("reopen").pending(), [ns.clone(), node.clone()]);
        journal.done(&node).expect("done");
        journal.done(&ns).expect("done");
        assert!(!path.exists(), "an empty journal leaves no file");
    }

    #[test]
    fn names_each_change() {
        assert_eq!(Undo::Uncordon { node: "agent1".into() }.to_string(), "uncordon node agent1");
        let text = serde_json::to_string(&Undo::DeleteNamespace { name: "gl-cbam".into() }).expect("json");
        assert_eq!(text, r#"{"undo":"delete-namespace","name":"gl-cbam"}"#);
    }
}
