//! Pipeline runs sent during a disruption, and how each ended. The
//! application answers a run started with `?wait=true` only when the run is
//! over: 200 when it completed, 503 when the pod refused it before starting
//! (it was shutting down), 429 when the pod was busy, 500 when it was aborted
//! at the shutdown deadline. A run the user never hears the end of (a reset,
//! a timeout, an abort) was cut: the one outcome a rollout may never cause.

use std::fmt;

use serde::Serialize;

use crate::Record;

/// How one run ended, as its caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Completed,
    /// Refused before it started (503 shutting down, 429 busy): the caller
    /// knows the run never began and may send it again.
    Refused,
    /// Started and not seen to complete: aborted, reset, timed out, or not
    /// reached at all.
    Cut,
}

impl RunOutcome {
    pub fn of(record: &Record) -> Self {
        match record.status {
            Some(200) => RunOutcome::Completed,
            Some(429 | 503) => RunOutcome::Refused,
            _ => RunOutcome::Cut,
        }
    }
}

/// What a list of run records says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunTally {
    pub sent: usize,
    pub completed: usize,
    /// Completed runs whose pod had begun shutting down before answering:
    /// the in-flight runs a SIGTERM let finish.
    pub completed_while_draining: usize,
    pub refused: usize,
    pub cut: usize,
    /// Scheduled time of the first cut run, for the report.
    pub first_cut_ms: Option<f64>,
}

impl RunTally {
    pub fn of(records: &[Record]) -> Self {
        let mut tally = RunTally { sent: records.len(), ..RunTally::default() };
        for r in records {
            match RunOutcome::of(r) {
                RunOutcome::Completed => {
                    tally.completed += 1;
                    tally.completed_while_draining += usize::from(r.draining);
                }
                RunOutcome::Refused => tally.refused += 1,
                RunOutcome::Cut => {
                    tally.cut += 1;
                    tally.first_cut_ms = Some(tally.first_cut_ms.map_or(r.scheduled_ms, |t| t.min(r.scheduled_ms)));
                }
            }
        }
        tally
    }
}

impl fmt::Display for RunTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent: {} completed ({} while their pod shut down), {} refused before starting, {} cut",
            self.sent, self.completed, self.completed_while_draining, self.refused, self.cut
        )?;
        if let Some(at) = self.first_cut_ms {
            write!(f, " (first at {:.1} s)", at / 1000.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Stream};

    fn run(seq: u32, status: Option<u16>, draining: bool) -> Record {
        Record {
            seq: u64::from(seq),
            scheduled_ms: f64::from(seq) * 1000.0,
            sent_ms: f64::from(seq) * 1000.0,
            latency_ms: 5000.0,
            kind: status.map_or(Kind::Reset, Kind::of_status),
            status,
            pod: None,
            error: None,
            stream: Stream::Run,
            draining,
            local_port: None,
        }
    }

    #[test]
    fn completed_refused_and_cut_runs_are_told_apart() {
        let records = [
            run(0, Some(200), false),
            run(1, Some(200), true),
            run(2, Some(503), true),
            run(3, Some(429), false),
            run(4, Some(500), true),
            run(5, None, false),
        ];
        let tally = RunTally::of(&records);
        assert_eq!((tally.sent, tally.completed, tally.completed_while_draining), (6, 2, 1));
        assert_eq!((tally.refused, tally.cut, tally.first_cut_ms), (2, 2, Some(4000.0)));
        assert_eq!(
            tally.to_string(),
            "6 sent: 2 completed (1 while their pod shut down), 2 refused before starting, 2 cut (first at 4.0 s)"
        );
    }
}
