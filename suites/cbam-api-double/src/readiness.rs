//! Readiness: secrets present, every mounted volume writable, not draining.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a volume check stays valid: probes every few seconds, not per request.
const RECHECK: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Readiness {
    volumes: Vec<(&'static str, PathBuf)>,
    missing_secrets: Vec<&'static str>,
    pub draining: AtomicBool,
    cached: Mutex<Option<(Instant, Vec<String>)>>,
}

fn writable(dir: &Path) -> Result<(), std::io::Error> {
    let probe = dir.join(format!(".ready-probe-{}", std::process::id()));
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}

impl Readiness {
    pub fn new(volumes: Vec<(&'static str, PathBuf)>, secrets: &[(&'static str, bool)]) -> Self {
        Readiness {
            volumes,
            missing_secrets: secrets.iter().filter(|(_, set)| !set).map(|(k, _)| *k).collect(),
            draining: AtomicBool::new(false),
            cached: Mutex::new(None),
        }
    }

    /// Why the pod is not ready; empty when it is.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = Vec::new();
        if self.draining.load(Ordering::SeqCst) {
            reasons.push("shutting down".into());
        }
        reasons.extend(self.missing_secrets.iter().map(|k| format!("secret {k} not set")));
        let mut cache = self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = cache.as_ref().filter(|(at, _)| at.elapsed() < RECHECK).map(|(_, r)| r.clone());
        let volume_reasons = fresh.unwrap_or_else(|| {
            let found: Vec<String> = self
                .volumes
                .iter()
                .filter_map(|(key, dir)| {
                    writable(dir).err().map(|e| format!("{key} {} not writable: {e}", dir.display()))
                })
                .collect();
            *cache = Some((Instant::now(), found.clone()));
            found
        });
        reasons.extend(volume_reasons);
        reasons
    }
}
