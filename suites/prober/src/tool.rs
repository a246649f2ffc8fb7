//! The harness's other jobs inside a cluster, so one static binary is the
//! whole tool image (no shell, no busybox pulled from anywhere):
//! `idle` keeps a tool pod alive for exec sessions, `inspect` prints what
//! the kernel says of PID 1 (the app, in a tool container sharing its PID
//! namespace), `signal` sends PID 1 a signal. Each prints what the harness
//! parses, or fails with a line naming what it could not do.

use std::io::Write;
use std::time::Duration;

/// Separates the two files `inspect` prints (the live tier splits on it).
pub const MOUNTS_MARK: &str = "--- /proc/1/mounts ---";

#[derive(Debug, thiserror::Error)]
pub enum ToolJobError {
    #[error("read {0}")]
    Read(&'static str, #[source] std::io::Error),
    #[error("write to stdout")]
    Write(#[source] std::io::Error),
    #[error("send {signal} to PID {pid}")]
    Signal {
        signal: &'static str,
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("no such process ID: {0}")]
    Pid(i32),
}

/// Blocks for `seconds` (the tool pod is deleted long before).
pub fn idle(seconds: u64) {
    std::thread::sleep(Duration::from_secs(seconds));
}

/// The text `inspect` prints: PID 1's status, the mark, its mounts.
pub fn inspection(status: &str, mounts: &str) -> String {
    format!("{}\n{MOUNTS_MARK}\n{}", status.trim_end(), mounts.trim_end())
}

/// Prints /proc/1/status, MOUNTS_MARK and /proc/1/mounts.
pub fn inspect() -> Result<(), ToolJobError> {
    let status = std::fs::read_to_string("/proc/1/status").map_err(|e| ToolJobError::Read("/proc/1/status", e))?;
    let mounts = std::fs::read_to_string("/proc/1/mounts").map_err(|e| ToolJobError::Read("/proc/1/mounts", e))?;
    writeln!(std::io::stdout().lock(), "{}", inspection(&status, &mounts)).map_err(ToolJobError::Write)
}

/// The signals the harness sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Signal {
    Term,
    Kill,
}

/// Sends SIGNAL to process PID (1: the app, seen from a tool container in
/// its PID namespace).
pub fn signal(pid: i32, signal: Signal) -> Result<(), ToolJobError> {
    let target = rustix::process::Pid::from_raw(pid).ok_or(ToolJobError::Pid(pid))?;
    let (sig, name) = match signal {
        Signal::Term => (rustix::process::Signal::TERM, "SIGTERM"),
        Signal::Kill => (rustix::process::Signal::KILL, "SIGKILL"),
    };
    rustix::process::kill_process(target, sig).map_err(|e| ToolJobError::Signal { signal: name, pid, source: e.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inspection_puts_the_mark_on_a_line_of_its_own() {
        let text = inspection("Name:\tapp\nUid:\t1 1 1 1\n", "overlay / overlay ro 0 0\n");
        assert_eq!(text, format!("Name:\tapp\nUid:\t1 1 1 1\n{MOUNTS_MARK}\noverlay / overlay ro 0 0"));
    }

    #[test]
    fn a_signal_to_no_process_is_an_error_naming_it() {
        // PID 0 is no process ID to signal by this call.
        let err = signal(0, Signal::Term).expect_err("PID 0 refused");
        assert_eq!(err.to_string(), "no such process ID: 0");
    }

    #[test]
    fn inspect_reads_this_process_table() {
        // PID 1 exists wherever the test runs; its status has a Name line.
        let status = std::fs::read_to_string("/proc/1/status").expect("/proc/1/status");
        assert!(status.contains("Name:"));
    }
}
