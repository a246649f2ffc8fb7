//! Pipeline runs: each lasts a requested time, optionally burning a share of
//! a CPU and holding some memory, so generated load moves CPU, memory and
//! `cbam_pipeline_active_runs`. Bounded in count, duration and memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Ten minutes: an autoscaling scenario holds runs from before its load
/// until its last step (up to about 400 s).
pub const MAX_DURATION_SECONDS: f64 = 600.0;
pub const MAX_MEMORY_MIB: u64 = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub duration_seconds: f64,
    #[serde(default)]
    pub cpu: f64,
    #[serde(default)]
    pub memory_mib: u64,
}

#[derive(Debug, Serialize)]
pub struct RunAccepted {
    pub id: u64,
    pub duration_seconds: f64,
    pub cpu: f64,
    pub memory_mib: u64,
    pub active_runs: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RunError {
    #[error("duration_seconds must be in (0, {MAX_DURATION_SECONDS}]")]
    Duration,
    #[error("cpu must be in [0, 1] (a share of one core)")]
    Cpu,
    #[error("memory_mib must be at most {MAX_MEMORY_MIB}")]
    Memory,
    #[error("pipeline busy: {0} runs in progress")]
    Busy(i64),
    #[error("pipeline memory budget exhausted")]
    MemoryBudget,
    #[error("shutting down")]
    Draining,
}

impl RunRequest {
    pub fn validate(&self) -> Result<(), RunError> {
        if !(self.duration_seconds > 0.0 && self.duration_seconds <= MAX_DURATION_SECONDS) {
            return Err(RunError::Duration);
        }
        if !(0.0..=1.0).contains(&self.cpu) {
            return Err(RunError::Cpu);
        }
        if self.memory_mib > MAX_MEMORY_MIB {
            return Err(RunError::Memory);
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Pipeline {
    pub metrics: Arc<Metrics>,
    pub max_runs: usize,
    pub memory_budget_mib: u64,
    memory_in_use: AtomicU64,
    next_id: AtomicU64,
    /// Set when the shutdown deadline passes: runs stop early.
    pub abort: Arc<AtomicBool>,
}

impl Pipeline {
    pub fn new(metrics: Arc<Metrics>, max_runs: usize, memory_budget_mib: u64) -> Self {
        Pipeline {
            metrics,
            max_runs,
            memory_budget_mib,
            memory_in_use: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            abort: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn active(&self) -> i64 {
        self.metrics.active_runs.load(Ordering::SeqCst)
    }

    /// Admits a run (or says why not) and starts it on a blocking thread;
    /// the receiver says, when the run is over, whether it completed (true)
    /// or was aborted at the shutdown deadline (false).
    pub fn start(self: &Arc<Self>, req: &RunRequest) -> Result<(RunAccepted, oneshot::Receiver<bool>), RunError> {
        req.validate()?;
        let active = self.metrics.active_runs.fetch_add(1, Ordering::SeqCst) + 1;
        #[expect(clippy::cast_possible_wrap, reason = "max_runs is a small setting")]
        if active > self.max_runs as i64 {
            self.metrics.active_runs.fetch_sub(1, Ordering::SeqCst);
            self.metrics.runs_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(RunError::Busy(active - 1));
        }
        let used = self.memory_in_use.fetch_add(req.memory_mib, Ordering::SeqCst) + req.memory_mib;
        if used > self.memory_budget_mib {
            self.memory_in_use.fetch_sub(req.memory_mib, Ordering::SeqCst);
            self.metrics.active_runs.fetch_sub(1, Ordering::SeqCst);
            self.metrics.runs_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(RunError::MemoryBudget);
        }
        self.metrics.runs_started.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (duration, cpu, memory) = (Duration::from_secs_f64(req.duration_seconds), req.cpu, req.memory_mib);
        let this = Arc::clone(self);
        let (done_tx, done) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let completed = this.work(duration, cpu, memory);
            this.memory_in_use.fetch_sub(memory, Ordering::SeqCst);
            this.metrics.active_runs.fetch_sub(1, Ordering::SeqCst);
            let counter = if completed { &this.metrics.runs_completed } else { &this.metrics.runs_aborted };
            counter.fetch_add(1, Ordering::Relaxed);
            // Nobody waits for a run started without `wait`.
            let _ = done_tx.send(completed);
        });
        let accepted =
            RunAccepted { id, duration_seconds: req.duration_seconds, cpu, memory_mib: memory, active_runs: active };
        Ok((accepted, done))
    }

    /// Busy-loops `cpu` of every 10 ms slice, sleeps the rest. Returns false if aborted.
    fn work(&self, duration: Duration, cpu: f64, memory_mib: u64) -> bool {
        const SLICE: Duration = Duration::from_millis(10);
        #[expect(clippy::cast_possible_truncation, reason = "bounded by MAX_MEMORY_MIB")]
        let mut held = vec![0u8; (memory_mib * 1024 * 1024) as usize];
        // Touch every page so the memory is resident, as real work would be.
        for page in held.chunks_mut(4096) {
            page[0] = 1;
        }
        let end = Instant::now() + duration;
        let mut spin: u64 = 0;
        while Instant::now() < end {
            if self.abort.load(Ordering::Relaxed) {
                return false;
            }
            let slice_end = Instant::now() + SLICE;
            let busy_until = Instant::now() + SLICE.mul_f64(cpu);
            while Instant::now() < busy_until {
                spin = std::hint::black_box(spin.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
            let now = Instant::now();
            if now < slice_end {
                std::thread::sleep((slice_end - now).min(end.saturating_duration_since(now)));
            }
        }
        std::hint::black_box(&held);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0.0, 0.0, 0, RunError::Duration)]
    #[case(601.0, 0.0, 0, RunError::Duration)]
    #[case(f64::NAN, 0.0, 0, RunError::Duration)]
    #[case(1.0, 1.5, 0, RunError::Cpu)]
    #[case(1.0, -0.1, 0, RunError::Cpu)]
    #[case(1.0, 0.5, 257, RunError::Memory)]
    fn out_of_range_requests_are_refused(#[case] d: f64, #[case] cpu: f64, #[case] mem: u64, #[case] err: RunError) {
        let req = RunRequest { duration_seconds: d, cpu, memory_mib: mem };
        assert_eq!(req.validate(), Err(err));
    }
}
