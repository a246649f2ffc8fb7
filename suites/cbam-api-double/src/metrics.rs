//! Prometheus text exposition: pipeline gauge, HTTP counters and latency
//! histograms by route and status, and process metrics from /proc.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BUCKETS: [f64; 11] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug)]
pub struct Metrics {
    pub active_runs: AtomicI64,
    pub runs_started: AtomicU64,
    pub runs_completed: AtomicU64,
    pub runs_aborted: AtomicU64,
    pub runs_rejected: AtomicU64,
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    started: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            active_runs: AtomicI64::new(0),
            runs_started: AtomicU64::new(0),
            runs_completed: AtomicU64::new(0),
            runs_aborted: AtomicU64::new(0),
            runs_rejected: AtomicU64::new(0),
            requests: Mutex::default(),
            latency: Mutex::default(),
            started: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default(),
        }
    }
}

/// Reads a field of /proc/self/status like "VmRSS:  1234 kB", in bytes.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// utime + stime from /proc/self/stat, in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    #[expect(clippy::cast_precision_loss, reason = "tick counts stay far below 2^52")]
    Some(ticks as f64 / 100.0)
}

pub fn resident_bytes() -> Option<u64> {
    status_kib(&std::fs::read_to_string("/proc/self/status").ok()?, "VmRSS:")
}

impl Metrics {
    pub fn observe(&self, route: &'static str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((route, method.to_owned(), status)).or_default() += 1;
        }
        if let Ok(mut map) = self.latency.lock() {
            let h = map.entry(route).or_default();
            let secs = elapsed.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP cbam_pipeline_active_runs Pipeline runs in progress in this pod.");
        let _ = writeln!(out, "# TYPE cbam_pipeline_active_runs gauge");
        let _ = writeln!(out, "cbam_pipeline_active_runs {}", self.active_runs.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP cbam_pipeline_runs_total Pipeline runs by outcome.");
        let _ = writeln!(out, "# TYPE cbam_pipeline_runs_total counter");
        for (outcome, counter) in [
            ("started", &self.runs_started),
            ("completed", &self.runs_completed),
            ("aborted", &self.runs_aborted),
            ("rejected", &self.runs_rejected),
        ] {
            let _ =
                writeln!(out, "cbam_pipeline_runs_total{{outcome=\"{outcome}\"}} {}", counter.load(Ordering::Relaxed));
        }
        let _ = writeln!(out, "# HELP cbam_http_requests_total HTTP requests by route, method and status.");
        let _ = writeln!(out, "# TYPE cbam_http_requests_total counter");
        if let Ok(map) = self.requests.lock() {
            for ((route, method, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "cbam_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(out, "# HELP cbam_http_request_duration_seconds HTTP request latency by route.");
        let _ = writeln!(out, "# TYPE cbam_http_request_duration_seconds histogram");
        if let Ok(map) = self.latency.lock() {
            for (route, h) in map.iter() {
                for (bound, count) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(
                        out,
                        "cbam_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "cbam_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "cbam_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
                let _ = writeln!(out, "cbam_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
            }
        }
        self.render_process(&mut out);
        out
    }

    fn render_process(&self, out: &mut String) {
        if let Some(cpu) = std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(cpu_seconds) {
            let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}");
        }
        if let Some(rss) = resident_bytes() {
            let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}");
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let _ = writeln!(out, "# TYPE process_open_fds gauge\nprocess_open_fds {}", fds.count());
        }
        let _ = writeln!(out, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}", self.started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_ticks_after_the_command_name() {
        let stat = "42 (cbam api) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn renders_the_pipeline_gauge_and_histograms() {
        let m = Metrics::default();
        m.active_runs.store(3, Ordering::Relaxed);
        m.observe("/health", "GET", 200, Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains("cbam_pipeline_active_runs 3\n"));
        assert!(text.contains("cbam_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 1"));
        assert!(text.contains("cbam_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.005\"} 1"));
    }
}
