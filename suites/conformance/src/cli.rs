//! The front door: `conformance ENV [--tier ..] [--infra DIR] [--report DIR]`.
//! Exit 0: every check asked for ran and passed. 1: a check failed. 2: usage,
//! input or environment error (clap also exits 2 on bad usage). 3:
//! incomplete, nothing failed but something asked for was not verified.

use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};

use crate::environment::{self, Env, EnvError};
use cbam_cluster::existing::ExistingOptions;
use cbam_cluster::timeouts::{TimeoutError, Timeouts};

use crate::live::{self, LiveError, LiveOptions};
use crate::outcome::Status;
use crate::render::Kustomize;
use crate::report::{self, Evidence, Skipped, Staging};
use crate::static_tier::{self, StaticOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    /// Render and check the manifests; no cluster.
    Static,
    /// Apply to a k3s cluster and observe behaviour.
    Live,
    /// Static, then live.
    All,
}

/// `ENV` as typed: `all` or a well-formed name (whether it has a fixture
/// is known once the fixtures directory is).
fn parse_env(text: &str) -> Result<String, EnvError> {
    if text == environment::ALL { Ok(text.to_owned()) } else { Env::new(text).map(|e| e.as_str().to_owned()) }
}

/// How deep the live tier goes (autoscaling scenarios, scale-down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Scale-up only: what `.ci/run` and pull requests run.
    Quick,
    /// Up and down, every metric: the nightly job.
    Nightly,
}

/// What the run prints on stdout (`--format`, repeatable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per failing fact (check, object, expected, found, source), then the verdict.
    Text,
    /// summary.json (the text goes to stderr).
    Json,
    /// The SARIF 2.1.0 log, results.sarif (the text goes to stderr).
    Sarif,
    /// GitHub workflow annotations at the source lines, at most 10, after the text.
    Github,
}

/// Where the live tier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cluster {
    /// k3s in containers (testcontainers), created and removed by the harness.
    K3s,
    /// The real kind CLI with a node image.
    Kind,
    /// A kubeconfig/context you provide; left as found.
    Existing,
}

/// Conformance of the CBAM Importer Copilot deployment to what its summary documents.
#[derive(Debug, Parser)]
#[command(
    name = "conformance",
    version,
    after_help = "A kit cluster for people and scripts: conformance cluster up|status|load|down (see `conformance cluster --help`)."
)]
pub struct Args {
    /// Environment to check: one of fixtures/environments/NAME.yaml, or `all`.
    #[arg(value_parser = parse_env)]
    pub env: String,
    /// Which tier to run.
    #[arg(long, value_enum, default_value = "all")]
    pub tier: Tier,
    /// The deployment under test (a copy of infra/, e.g. a pull request's).
    #[arg(long, default_value = "infra")]
    pub infra: PathBuf,
    /// Expected outcomes.
    #[arg(long, default_value = "fixtures")]
    pub fixtures: PathBuf,
    /// Evidence directory [default: target/conformance/ENV].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// kustomize binary (or kubectl, used as `kubectl kustomize`) [default: from PATH].
    #[arg(long)]
    pub kustomize: Option<PathBuf>,
    /// Live tier depth.
    #[arg(long, value_enum, default_value = "quick")]
    pub profile: Profile,
    /// Live tier cluster provider.
    #[arg(long, value_enum, default_value = "k3s")]
    pub cluster: Cluster,
    /// Kubeconfig for `--cluster existing` [default: $KUBECONFIG or ~/.kube/config].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Context for `--cluster existing` [default: the kubeconfig's current one].
    #[arg(long)]
    pub context: Option<String>,
    /// The ingress controller's Service for `--cluster existing`, as
    /// NAMESPACE/NAME [default: ingress-nginx/ingress-nginx-controller, then traefik].
    #[arg(long)]
    pub ingress_service: Option<String>,
    /// Application image archive loaded into the cluster (e.g. the real CBAM API).
    #[arg(long, default_value = "target/image/cbam-api.tar")]
    pub app_image: PathBuf,
    /// A previous release's infra tree: `live-rollout-under-load` applies its
    /// overlay, then this one, then rolls back to it and forward again, all
    /// under load (the release gate passes the last released tag's infra/).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// The static prober the zero-downtime checks run in a tool pod
    /// (`just image` builds it).
    #[arg(long, default_value = "target/image/cbam-prober")]
    pub prober: PathBuf,
    /// Resource scale factor for the test cluster: `auto` or a number.
    #[arg(long, default_value = "auto", value_parser = parse_fit)]
    pub fit: Fit,
    /// Image with busybox the cluster can run, for the harness's ephemeral
    /// tool container [default: the kit's; busybox:1.37 on an existing cluster].
    #[arg(long)]
    pub tool_image: Option<String>,
    /// Node image for `--cluster k3s`: the kit's (`just kit`) by default, or
    /// an upstream k3s image (rancher/k3s:TAG) where a registry has one.
    #[arg(long, value_name = "REF")]
    pub node_image: Option<String>,
    /// Keep the kit cluster warm after the run and attach to it on the next
    /// (keyed by node image and agents; stale ones are removed).
    #[arg(long)]
    pub reuse: bool,
    /// Agents beside the server in the kit cluster.
    #[arg(long, default_value_t = 2)]
    pub agents: usize,
    /// A live check not to run (repeatable); reported as not verified, never as passed.
    #[arg(long = "skip-check", value_name = "CHECK", value_parser = parse_live_check)]
    pub skip_checks: Vec<String>,
    /// Override one wait's bound for this run (repeatable): NAME=SECONDS,
    /// NAME one of fixtures/timeouts.yaml's (rollout, drain, ...).
    #[arg(long = "timeout", value_name = "NAME=SECONDS", value_parser = parse_timeout)]
    pub timeouts: Vec<String>,
    /// Only undo what interrupted runs left on the `--cluster existing`
    /// cluster (its cleanup journal), then exit: 0 done, 2 not possible.
    #[arg(long)]
    pub cleanup_only: bool,
    /// What to print on stdout (repeatable): json and sarif only alone, as
    /// stdout is then a document. Every format is also in the report directory.
    #[arg(long = "format", value_enum, default_value = "text")]
    pub formats: Vec<Format>,
    /// Print passing facts too.
    #[arg(long, short)]
    pub verbose: bool,
}

/// The human text's stream: stdout, or stderr when stdout is a document.
#[derive(Debug, Clone, Copy)]
struct Console {
    to_stderr: bool,
}

impl Console {
    fn new(formats: &[Format]) -> Self {
        Console { to_stderr: formats.iter().any(|f| matches!(f, Format::Json | Format::Sarif)) }
    }

    fn say(&self, line: impl std::fmt::Display) {
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// A flag value clap refuses (exit 2, with clap's usage line).
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("not a live check id: {0:?} (one of {1})")]
    UnknownCheck(String, String),
    #[error("{0} cannot be skipped: every other live check needs the Deployment rolled out")]
    Precondition(String),
    #[error("expected `auto` or a factor >= 1, found {0:?}")]
    Fit(String),
}

fn parse_live_check(text: &str) -> Result<String, ArgError> {
    use crate::live::{LIVE_CHECKS, Role, find};
    let skippable = || LIVE_CHECKS.iter().filter(|c| c.role != Role::Rollout).map(|c| c.id);
    match find(text) {
        Some(c) if c.role == Role::Rollout => Err(ArgError::Precondition(text.to_owned())),
        Some(_) => Ok(text.to_owned()),
        None => Err(ArgError::UnknownCheck(text.to_owned(), skippable().collect::<Vec<_>>().join(", "))),
    }
}

fn parse_timeout(text: &str) -> Result<String, TimeoutError> {
    Timeouts::default().set(text).map(|()| text.to_owned())
}

/// The bounds of this run: the file's, with `--timeout` applied.
fn timeouts(args: &Args) -> Timeouts {
    let mut t = Timeouts::default();
    for text in &args.timeouts {
        // Each was checked by the parser; a failure here cannot happen.
        let _ = t.set(text);
    }
    t
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Auto,
    Factor(u32),
}

fn parse_fit(text: &str) -> Result<Fit, ArgError> {
    if text == "auto" {
        return Ok(Fit::Auto);
    }
    match text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Fit::Factor(n)),
        _ => Err(ArgError::Fit(text.to_owned())),
    }
}

/// Usage, input or environment error (clap uses the same code for usage).
pub const EXIT_ERROR: u8 = 2;

/// Every exit code with its `summary.json` status, as the README's table has them.
pub fn exit_codes() -> [(u8, &'static str); 4] {
    use crate::report::Verdict;
    let status = |v: Verdict| match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Incomplete => "incomplete",
    };
    let code = |v: Verdict| (v.exit_code(), status(v));
    [code(Verdict::Pass), code(Verdict::Fail), (EXIT_ERROR, "error"), code(Verdict::Incomplete)]
}

/// The one error-chain formatter ("failed to X: Y: Z"), shared with the cluster crate.
pub use cbam_cluster::error_chain::render as chain;

fn existing_options(args: &Args) -> ExistingOptions {
    ExistingOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        ingress_service: args.ingress_service.clone(),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("start the async runtime")]
struct RuntimeError(#[source] std::io::Error);

fn runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(RuntimeError)
}

/// After a panic: the journal replayed on a fresh runtime; what happened.
fn runtime_cleanup(existing: &ExistingOptions, t: &Timeouts) -> String {
    let result = runtime().map_err(|e| chain(&e));
    match result.and_then(|rt| rt.block_on(live::cleanup_only(existing, t)).map_err(|e| chain(&e))) {
        Ok(undone) => format!("undone: {}", if undone.is_empty() { "nothing".into() } else { undone.join(", ") }),
        Err(e) => format!("NOT undone ({e}): run --cleanup-only"),
    }
}

/// `--cleanup-only`: the existing cluster's journal replayed, nothing else.
fn cleanup_only(args: &Args) -> u8 {
    if args.cluster != Cluster::Existing {
        eprintln!("error: --cleanup-only needs --cluster existing (a kit cluster is removed with its run)");
        return EXIT_ERROR;
    }
    let result = runtime().map_err(|e| chain(&e)).and_then(|rt| {
        rt.block_on(live::cleanup_only(&existing_options(args), &timeouts(args))).map_err(|e| chain(&e))
    });
    match result {
        Ok(undone) if undone.is_empty() => println!("cleanup: nothing left by an earlier run"),
        Ok(undone) => println!("cleanup: undone: {}", undone.join(", ")),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    }
    0
}

pub fn run(args: Args) -> u8 {
    if args.cleanup_only {
        return cleanup_only(&args);
    }
    let documents = args.formats.iter().filter(|f| matches!(f, Format::Json | Format::Sarif)).count();
    if documents > 0 && args.formats.len() > 1 {
        eprintln!("error: --format json and --format sarif make stdout a document: give either alone");
        return EXIT_ERROR;
    }
    let target = args.report.clone().unwrap_or_else(|| PathBuf::from("target/conformance").join(&args.env));
    let staging = match Staging::create(&target) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            return EXIT_ERROR;
        }
    };
    let code = run_into(&args, staging.path(), &target);
    if let Err(err) = staging.publish() {
        eprintln!("error: {}", chain(&err));
        return EXIT_ERROR;
    }
    code
}

/// The run, its evidence written to `report_dir` (published as `target`).
fn run_into(args: &Args, report_dir: &Path, target: &Path) -> u8 {
    let report_dir = report_dir.to_owned();
    let console = Console::new(&args.formats);
    let fail_input = |message: String| {
        eprintln!("error: {message}");
        if let Err(err) = report::write_error(&report_dir, &message) {
            eprintln!("error: {}", chain(&err));
        }
        EXIT_ERROR
    };
    if let Some(path) = args.kubeconfig.as_ref().filter(|p| !p.is_file()) {
        return fail_input(format!("failed to read kubeconfig {}: no such file", path.display()));
    }
    let kustomize = match Kustomize::locate(args.kustomize.as_deref()) {
        Ok(k) => k,
        Err(err) => return fail_input(chain(&err)),
    };
    let envs = match Env::select(&args.env, &args.fixtures) {
        Ok(envs) => envs,
        Err(err) => return fail_input(chain(&err)),
    };
    // A previous release to roll out from and back to: its overlays must
    // render before anything runs.
    let baseline = match &args.baseline {
        Some(dir) => match static_tier::render_baseline(&kustomize, dir, &envs) {
            Ok(b) => Some(b),
            Err(err) => return fail_input(chain(&err)),
        },
        None => None,
    };
    let options = StaticOptions { envs, infra: args.infra.clone(), fixtures: args.fixtures.clone(), kustomize };
    let static_run = match static_tier::run(&options) {
        Ok(run) => run,
        Err(err) => return fail_input(chain(&err)),
    };
    for outcome in static_run.outcomes().filter(|o| args.verbose || o.status == Status::Fail) {
        console.say(outcome.line());
    }
    for result in &static_run.results {
        if let Some((up, down)) = &result.hpa_timeline {
            console.say(format!("predicted HPA timeline [{}]: scale-up {up}", result.env));
            console.say(format!("predicted HPA timeline [{}]: scale-down {down}", result.env));
        }
    }
    let envs: Vec<&str> = static_run.results.iter().map(|r| r.env.as_str()).collect();
    console.say(format!(
        "static tier [{}]: {} facts in {} ms; kustomize {}",
        envs.join(", "),
        static_run.outcomes().count(),
        static_run.elapsed.as_millis(),
        static_run.kustomize
    ));
    let mut skipped = Vec::new();
    let mut live_run = None;
    if args.tier != Tier::Static {
        let requested = format!("cluster {:?}, profile {:?}", args.cluster, args.profile).to_lowercase();
        let outcome = {
            let opts = LiveOptions {
                app_image: args.app_image.clone(),
                prober: args.prober.clone(),
                baseline: baseline.clone(),
                fit: match args.fit {
                    Fit::Auto => None,
                    Fit::Factor(n) => Some(n),
                },
                agents: args.agents,
                report_dir: report_dir.clone(),
                profile: match args.profile {
                    Profile::Quick => live::Profile::Quick,
                    Profile::Nightly => live::Profile::Nightly,
                },
                skip_checks: args.skip_checks.clone(),
                timeouts: timeouts(args),
                tool_image: args.tool_image.clone(),
                provider: match args.cluster {
                    Cluster::Existing => live::Provider::Existing(existing_options(args)),
                    Cluster::Kind => live::Provider::Kind { node_image: args.node_image.clone() },
                    Cluster::K3s => live::Provider::Kit { reuse: args.reuse, node_image: args.node_image.clone() },
                },
            };
            let runtime = match runtime() {
                Ok(rt) => rt,
                Err(err) => return fail_input(chain(&err)),
            };
            // A panic must not leave an existing cluster changed: its
            // journal is replayed before the error is reported.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(live::run(&static_run, &opts))
            }));
            drop(runtime);
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(_) => {
                    let undone = match &opts.provider {
                        live::Provider::Existing(existing) => runtime_cleanup(existing, &opts.timeouts),
                        live::Provider::Kit { .. } => "a kit cluster is swept by the next run".into(),
                        live::Provider::Kind { .. } => "a kind cluster of this name is deleted by the next run".into(),
                    };
                    return fail_input(format!("failed to finish the live tier: it panicked (see above); {undone}"));
                }
            };
            match outcome {
                Ok(run) => Ok(run),
                // No engine: the live tier was asked for and not verified (exit 3).
                Err(LiveError::NoEngine) => Err("no container engine could be reached (run `just engine`)".to_owned()),
                Err(err) => return fail_input(chain(&err)),
            }
        };
        match outcome {
            Ok(run) => {
                for outcome in run.outcomes.iter().filter(|o| args.verbose || o.status != Status::Pass) {
                    console.say(outcome.line());
                }
                for note in &run.notes {
                    console.say(format!("live tier: {note}"));
                }
                for problem in &run.cleanup {
                    eprintln!(
                        "!!! CLEANUP NOT FINISHED: {problem} (kept in the journal: the next run or --cleanup-only retries)"
                    );
                }
                live_run = Some(run);
            }
            Err(reason) => {
                eprintln!(
                    "\n!!! LIVE TIER NOT VERIFIED ({requested}): {reason}. Not verified is not passed (exit 3).\n"
                );
                skipped.push(Skipped { tier: "live", reason: format!("{reason} (requested: {requested})") });
            }
        }
    }
    let evidence = Evidence { run: &static_run, live: live_run.as_ref(), skipped: &skipped };
    if let Err(err) = report::write(&report_dir, &evidence) {
        eprintln!("error: {}", chain(&err));
        return EXIT_ERROR;
    }
    let counts = report::counts(&evidence);
    console.say(format!("evidence: {}", target.display()));
    console.say(format!(
        "{}: {} passed, {} failed, {} not verified, {} skipped by request",
        counts.verdict().headline(),
        counts.passed,
        counts.failed,
        counts.not_verified,
        counts.excluded
    ));
    for format in &args.formats {
        match format {
            Format::Text => {}
            Format::Json => println!("{:#}", report::summary_json(&evidence)),
            Format::Sarif => println!("{:#}", crate::sarif::log(&evidence)),
            Format::Github => {
                for line in crate::annotations::lines(evidence.outcomes(), &target.display().to_string()) {
                    println!("{line}");
                }
            }
        }
    }
    counts.verdict().exit_code()
}
