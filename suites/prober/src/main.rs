//! `cbam-prober probe`: the in-cluster half of the zero-downtime checks. It
//! GETs a Service address on an open-loop schedule, and optionally starts
//! pipeline runs on a second one (each waited for until it ends), and
//! prints one JSON record per request as it completes (first line:
//! `{"started":true}`, last: the CPU and wall seconds it used); it stops at
//! `--seconds` or when its stdin closes (the harness's exec session
//! ending), whichever is first.
//!
//! `cbam-prober bench`: `just bench prober`, the rate one core sustains and
//! the p99 of how late requests leave against their schedule.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cbam_prober::http1::Request;
use cbam_prober::schedule::{Plan, run};
use cbam_prober::summary::Summary;
use cbam_prober::{Record, Stream, Usage, http1, tool};
use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Parser)]
#[command(about = "Open-loop HTTP prober")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Probe ADDR (a Service's ClusterIP:port) until --seconds or stdin closes.
    Probe {
        #[arg(long)]
        addr: SocketAddr,
        /// The Host header.
        #[arg(long)]
        host: String,
        #[arg(long, default_value = "/health")]
        path: String,
        #[arg(long)]
        rate: f64,
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        #[command(flatten)]
        runs: Runs,
    },
    /// Block for SECONDS: a tool pod's main process, for exec sessions.
    Idle {
        #[arg(long, default_value_t = 86_400)]
        seconds: u64,
    },
    /// Print PID 1's /proc status and mounts (the app, from a tool container
    /// in its PID namespace).
    Inspect,
    /// Send PID 1 (or --pid) a signal.
    Signal {
        #[arg(value_enum)]
        signal: tool::Signal,
        #[arg(long, default_value_t = 1)]
        pid: i32,
    },
    /// Measure the prober against a local server that answers at once.
    Bench {
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

/// The second stream: pipeline runs, each answered when it is over.
#[derive(Debug, Clone, clap::Args)]
struct Runs {
    /// Pipeline runs started per second (0: none).
    #[arg(long, default_value_t = 0.0)]
    run_rate: f64,
    /// How long each run lasts.
    #[arg(long, default_value_t = 5.0)]
    run_seconds: f64,
    #[arg(long, default_value = cbam_prober::RUN_PATH)]
    run_path: String,
}

#[derive(Debug, thiserror::Error)]
enum ProberError {
    #[error("start the runtime")]
    Runtime(#[source] std::io::Error),
    #[error("start the bench server")]
    Server(#[source] std::io::Error),
    #[error(transparent)]
    Tool(tool::ToolJobError),
    #[error("plan the load: --rate, --seconds and --run-seconds must be positive, --run-rate not negative")]
    Plan,
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn probe(addr: SocketAddr, get: Request, plan: Plan, timeout: Duration, runs: Runs) {
    let wall0 = Instant::now();
    let (stop_tx, stop) = watch::channel(false);
    // A blocking read on its own thread: stdin closing is the stop signal.
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while matches!(std::io::Read::read(&mut std::io::stdin(), &mut buf), Ok(n) if n > 0) {}
        let _ = stop_tx.send(true);
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
    let printer = tokio::spawn(async move {
        let print = |line: String| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        };
        print("{\"started\":true}".to_owned());
        while let Some(record) = rx.recv().await {
            print(serde_json::to_string(&record).unwrap_or_default());
        }
    });
    let runner = (runs.run_rate > 0.0).then(|| {
        let run_plan = Plan::new(runs.run_rate, plan.duration);
        let request = Request {
            host: get.host.clone(),
            path: runs.run_path,
            json_body: Some(serde_json::json!({ "duration_seconds": runs.run_seconds }).to_string()),
        };
        // A run answers when it is over: its timeout adds its length.
        let run_timeout = timeout + Duration::from_secs_f64(runs.run_seconds);
        let (run_tx, mut run_rx) = mpsc::unbounded_channel::<Record>();
        let (tx, stop) = (tx.clone(), stop.clone());
        tokio::spawn(async move {
            let tag = tokio::spawn(async move {
                while let Some(record) = run_rx.recv().await {
                    let _ = tx.send(Record { stream: Stream::Run, ..record });
                }
            });
            let send = move |_| {
                let request = request.clone();
                async move { http1::send(addr, &request, run_timeout).await }
            };
            run(run_plan, stop, send, run_tx).await;
            let _ = tag.await;
        })
    });
    let send = move |_| {
        let get = get.clone();
        async move { http1::send(addr, &get, timeout).await }
    };
    run(plan, stop, send, tx).await;
    if let Some(runner) = runner {
        let _ = runner.await;
    }
    let _ = printer.await;
    // The last line: what the prober cost, for the scenario's evidence.
    let usage = Usage { cpu_seconds: cpu_seconds(), wall_seconds: wall0.elapsed().as_secs_f64() };
    println!("{}", serde_json::to_string(&usage).unwrap_or_default());
}

fn bench(rate: f64, seconds: f64) -> Result<(), ProberError> {
    // The server on its own thread and runtime, so the prober has one core.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(ProberError::Runtime)?;
    let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(ProberError::Server)?;
    let addr = listener.local_addr().map_err(ProberError::Server)?;
    server.spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await;
            });
        }
    });
    let prober = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ProberError::Runtime)?;
    let plan = Plan::new(rate, Duration::from_secs_f64(seconds));
    let (_stop_tx, stop) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let timeout = Duration::from_secs(2);
    prober.block_on(run(plan, stop, move |_| http1::get(addr, "bench", "/", timeout), tx));
    let (cpu1, wall) = (cpu_seconds(), wall0.elapsed().as_secs_f64());
    let mut records = Vec::new();
    while let Ok(r) = rx.try_recv() {
        records.push(r);
    }
    let s = Summary::of(&records);
    #[expect(clippy::cast_precision_loss, reason = "counts")]
    let achieved = s.sent as f64 / wall;
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => {
            format!("{:.2} CPU s for prober and server ({:.0} % of one core)", b - a, (b - a) / wall * 100.0)
        }
        _ => "CPU time unknown".to_owned(),
    };
    println!("prober bench: {rate} requests/s asked for {seconds} s, one core for the prober:");
    println!("  sent {} in {wall:.2} s = {achieved:.0} requests/s; {} failed", s.sent, s.failed);
    println!(
        "  lateness p99 {:.2} ms (target < 5 ms); latency p50 {:.2} ms, p99 {:.2} ms",
        s.lateness_p99_ms.unwrap_or(f64::NAN),
        s.latency_p50_ms.unwrap_or(f64::NAN),
        s.latency_p99_ms.unwrap_or(f64::NAN)
    );
    println!("  {cpu}");
    let met = achieved >= rate * 0.99 && s.failed == 0 && s.lateness_p99_ms.is_some_and(|l| l < 5.0);
    println!("  {}", if met { "targets met" } else { "TARGET MISSED (rate, no failures, lateness p99 < 5 ms)" });
    Ok(())
}

fn main() -> ExitCode {
    let result = match Args::parse().mode {
        Mode::Probe { addr, host, path, rate, seconds, timeout_ms, runs } => {
            if rate <= 0.0 || seconds <= 0.0 || runs.run_rate < 0.0 || runs.run_seconds <= 0.0 {
                Err(ProberError::Plan)
            } else {
                let plan = Plan::new(rate, Duration::from_secs_f64(seconds));
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ProberError::Runtime).map(
                    |rt| {
                        let get = Request { host, path, json_body: None };
                        rt.block_on(probe(addr, get, plan, Duration::from_millis(timeout_ms), runs));
                    },
                )
            }
        }
        Mode::Bench { rate, seconds } => bench(rate, seconds),
        Mode::Idle { seconds } => {
            tool::idle(seconds);
            Ok(())
        }
        Mode::Inspect => tool::inspect().map_err(ProberError::Tool),
        Mode::Signal { signal, pid } => tool::signal(pid, signal).map_err(ProberError::Tool),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cbam-prober: {}", cbam_error_chain::render(&err));
            ExitCode::from(2)
        }
    }
}
