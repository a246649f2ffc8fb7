//! What a list of records says: counts by kind, latency and lateness
//! percentiles, when failures happened, and per-second bins for a plot.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{Kind, Record};

/// The value at quantile `q` (0..=1) of `values` (nearest rank), or None.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss, reason = "rank")]
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub sent: usize,
    pub failed: usize,
    pub by_kind: BTreeMap<Kind, usize>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// How late requests were sent against their schedule (the prober's own error).
    pub lateness_p99_ms: Option<f64>,
    /// Scheduled times of the first and last failed request.
    pub first_failure_ms: Option<f64>,
    pub last_failure_ms: Option<f64>,
    /// Pods that answered (where the application names itself).
    pub pods: BTreeSet<String>,
}

impl Summary {
    pub fn of(records: &[Record]) -> Self {
        let mut by_kind = BTreeMap::new();
        for r in records {
            *by_kind.entry(r.kind).or_insert(0) += 1;
        }
        let failures: Vec<&Record> = records.iter().filter(|r| r.kind.failed()).collect();
        let mut latency: Vec<f64> = records.iter().map(|r| r.latency_ms).collect();
        let mut lateness: Vec<f64> = records.iter().map(|r| (r.sent_ms - r.scheduled_ms).max(0.0)).collect();
        Summary {
            sent: records.len(),
            failed: failures.len(),
            by_kind,
            latency_p50_ms: quantile(&mut latency, 0.50),
            latency_p99_ms: quantile(&mut latency, 0.99),
            latency_max_ms: latency.last().copied(),
            lateness_p99_ms: quantile(&mut lateness, 0.99),
            first_failure_ms: failures.iter().map(|r| r.scheduled_ms).reduce(f64::min),
            last_failure_ms: failures.iter().map(|r| r.scheduled_ms).reduce(f64::max),
            pods: records.iter().filter_map(|r| r.pod.clone()).collect(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} sent, {} failed", self.sent, self.failed)?;
        let failed: Vec<String> =
            self.by_kind.iter().filter(|(k, _)| k.failed()).map(|(k, n)| format!("{n} {k:?}")).collect();
        if !failed.is_empty() {
            write!(f, " ({})", failed.join(", "))?;
        }
        if let (Some(a), Some(b)) = (self.first_failure_ms, self.last_failure_ms) {
            write!(f, " between {:.1} s and {:.1} s", a / 1000.0, b / 1000.0)?;
        }
        if let Some(p99) = self.latency_p99_ms {
            write!(f, ", p99 {p99:.0} ms")?;
        }
        Ok(())
    }
}

/// One second of a run, by scheduled time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    pub second: u64,
    pub ok: usize,
    pub failed: BTreeMap<Kind, usize>,
    pub latency_p99_ms: Option<f64>,
}

pub fn per_second(records: &[Record]) -> Vec<Second> {
    let mut bins: BTreeMap<u64, Vec<&Record>> = BTreeMap::new();
    for r in records {
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "non-negative seconds")]
        bins.entry((r.scheduled_ms / 1000.0).floor() as u64).or_default().push(r);
    }
    bins.into_iter()
        .map(|(second, rs)| {
            let mut failed = BTreeMap::new();
            for r in rs.iter().filter(|r| r.kind.failed()) {
                *failed.entry(r.kind).or_insert(0) += 1;
            }
            let mut latency: Vec<f64> = rs.iter().map(|r| r.latency_ms).collect();
            Second {
                second,
                ok: rs.len() - failed.values().sum::<usize>(),
                failed,
                latency_p99_ms: quantile(&mut latency, 0.99),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, at: f64, kind: Kind, latency: f64) -> Record {
        Record {
            seq,
            scheduled_ms: at,
            sent_ms: at + 1.0,
            latency_ms: latency,
            kind,
            status: None,
            pod: Some(format!("p{}", seq % 2)),
            error: None,
            stream: crate::Stream::Get,
            draining: false,
            local_port: None,
        }
    }

    #[test]
    fn counts_failures_and_when_they_happened() {
        let records: Vec<Record> = (0..100)
            .map(|n| {
                let kind = if (40..43).contains(&n) { Kind::Connect } else { Kind::Ok };
                record(n, n as f64 * 50.0, kind, if n == 99 { 900.0 } else { 10.0 })
            })
            .collect();
        let s = Summary::of(&records);
        assert_eq!((s.sent, s.failed), (100, 3));
        assert_eq!(s.by_kind[&Kind::Connect], 3);
        assert_eq!((s.first_failure_ms, s.last_failure_ms), (Some(2000.0), Some(2100.0)));
        assert_eq!(s.latency_p99_ms, Some(10.0));
        assert_eq!(s.latency_max_ms, Some(900.0));
        assert_eq!(s.lateness_p99_ms, Some(1.0));
        assert_eq!(s.pods.len(), 2);
        assert_eq!(s.to_string(), "100 sent, 3 failed (3 Connect) between 2.0 s and 2.1 s, p99 10 ms");
        let bins = per_second(&records);
        assert_eq!(bins.len(), 5);
        assert_eq!((bins[2].ok, bins[2].failed[&Kind::Connect]), (17, 3));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.99), Some(198.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
