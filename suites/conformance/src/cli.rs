//! The front door: `conformance ENV [--tier ..] [--infra DIR] [--report DIR]`
//! (the same as `conformance check ENV ...`), and `conformance cluster
//! up|status|load|down`. Exit 0: every check asked for ran and passed. 1: a
//! check failed. 2: usage, input or environment error (clap also exits 2 on
//! bad usage). 3: incomplete, nothing failed but something asked for was not
//! verified.
//!
//! A check run is four steps, each a function: `plan` (inputs located and
//! read), `static_step`, `live_step`, `publish` (evidence written, verdict).

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use cbam_cluster::existing::ExistingOptions;
use cbam_cluster::timeouts::{TimeoutError, Timeouts};
use cbam_error_chain::render as chain;
use cbam_live_tier::run::cleanup;
use cbam_live_tier::run::error::LiveError;
use cbam_live_tier::run::target::{LiveOptions, Provider};
use cbam_model::environment::{self, Env, EnvError};
use cbam_model::outcome::Status;
use cbam_model::profile::Profile;
use cbam_model::run::{Baseline, LiveRun, Rule, StaticRun};
use cbam_report::evidence::{Evidence, Skipped};
use cbam_report::report::{self, Staging};
use cbam_report::{annotations, sarif};
use cbam_static_tier::render::Kustomize;
use cbam_static_tier::tier::{self as static_tier, StaticOptions};

use crate::exit_code::EXIT_ERROR;
use crate::provider::Cluster;

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

/// Every check, static then live, in table order: the report's rules.
pub fn rules() -> Vec<Rule> {
    let static_rows = cbam_static_tier::checks::CHECKS.iter().map(|c| Rule { id: c.id, about: c.about });
    let live_rows = cbam_live_tier::checks::LIVE_CHECKS.iter().map(|c| Rule { id: c.id, about: c.about });
    static_rows.chain(live_rows).collect()
}

/// `--profile`: the model's one `Profile`, each value with its help.
fn profile_parser() -> impl clap::builder::TypedValueParser<Value = Profile> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(Profile::ALL.map(|p| PossibleValue::new(p.as_str()).help(p.about())))
        .try_map(|name| name.parse::<Profile>())
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

/// Conformance of the CBAM Importer Copilot deployment to what its summary documents.
#[derive(Debug, Parser)]
#[command(
    name = "conformance",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "A kit cluster for people and scripts: conformance cluster up|status|load|down (see `conformance cluster --help`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a command: `conformance ENV [OPTIONS]` checks ENV.
    #[command(flatten)]
    pub check: Args,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check ENV: the static tier, the live tier, the evidence and the verdict
    /// (what `conformance ENV` does).
    Check(Box<Args>),
    /// A kit or kind cluster in Docker for people and scripts, kept until `down`.
    Cluster(crate::cluster_command::ClusterArgs),
}

/// Runs the command the command line names; the process's exit code.
pub fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Some(Command::Cluster(args)) => crate::cluster_command::run(&args),
        Some(Command::Check(args)) => run(*args),
        None => run(cli.check),
    }
}

/// `conformance [check] ENV [OPTIONS]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment to check: one of fixtures/environments/NAME.yaml, or `all`.
    // An Option only so that `conformance cluster ...` parses without it;
    // clap requires it wherever a check runs.
    #[arg(value_parser = parse_env, required = true)]
    pub env: Option<String>,
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
    #[arg(long, value_parser = profile_parser(), default_value = "quick")]
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
    /// The harness's tool image archive (`just image` builds it: the prober,
    /// inspector and SIGTERM tool as one static binary on scratch), served to
    /// the clusters the harness creates; on an existing cluster load it
    /// first (`conformance cluster load`), or push it and pass --tool-image.
    #[arg(long, default_value = "target/image/cbam-tool.tar")]
    pub tool_archive: PathBuf,
    /// Resource scale factor for the test cluster: `auto` or a number.
    #[arg(long, default_value = "auto", value_parser = parse_fit)]
    pub fit: Fit,
    /// The tool image as your cluster pulls it (the tool archive pushed to
    /// your registry or mirror) [default: the tool archive's image, by
    /// digest, which the nodes must already have].
    #[arg(long, value_name = "REF", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub tool_image: Option<String>,
    /// Node image for `--cluster k3s`: the kit's (`just kit`) by default, or
    /// an upstream k3s image (rancher/k3s:TAG) where a registry has one.
    #[arg(long, value_name = "REF")]
    pub node_image: Option<String>,
    /// Node image (k3s-compatible) of the workers `live-cluster-upgrade`
    /// joins on `--cluster k3s`, e.g. a newer Kubernetes than `--node-image`:
    /// the report states both pools' kubelet versions. Without it the
    /// workers are replaced at the same version, and the report says so.
    #[arg(long, value_name = "REF")]
    pub upgrade_to: Option<String>,
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
    use cbam_live_tier::catalog::Role;
    use cbam_live_tier::checks::{LIVE_CHECKS, find};
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
    match result.and_then(|rt| rt.block_on(cleanup::cleanup_only(existing, t)).map_err(|e| chain(&e))) {
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
        rt.block_on(cleanup::cleanup_only(&existing_options(args), &timeouts(args))).map_err(|e| chain(&e))
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
    let env = args.env.clone().unwrap_or_default();
    let target = args.report.clone().unwrap_or_else(|| PathBuf::from("target/conformance").join(&env));
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

/// Why a check run stopped before its verdict: a usage, input or
/// environment error (exit 2), said on stderr and in `error.txt`. The CLI
/// is the edge: errors become their one-line chain here.
#[derive(Debug)]
struct Stopped(String);

impl<E: std::error::Error> From<&E> for Stopped {
    fn from(err: &E) -> Self {
        Stopped(chain(err))
    }
}

/// What a check run needs, located and read before anything runs.
struct Plan {
    options: StaticOptions,
    /// A previous release to roll out from and back to (its overlays render
    /// before anything runs).
    baseline: Option<Baseline>,
}

/// The run, its evidence written to `report_dir` (published as `target`).
fn run_into(args: &Args, report_dir: &Path, target: &Path) -> u8 {
    let console = Console::new(&args.formats);
    let steps = || -> Result<u8, Stopped> {
        let plan = plan(args)?;
        let static_run = static_step(args, &plan, &console)?;
        let (live_run, skipped) = live_step(args, plan.baseline, &static_run, report_dir, &console)?;
        let rules = rules();
        let evidence = Evidence { run: &static_run, live: live_run.as_ref(), skipped: &skipped, rules: &rules };
        publish(args, &evidence, report_dir, target, &console)
    };
    steps().unwrap_or_else(|Stopped(message)| {
        eprintln!("error: {message}");
        if let Err(err) = report::write_error(report_dir, &message) {
            eprintln!("error: {}", chain(&err));
        }
        EXIT_ERROR
    })
}

/// The inputs: kubeconfig, kustomize, environments, a baseline release.
fn plan(args: &Args) -> Result<Plan, Stopped> {
    if let Some(path) = args.kubeconfig.as_ref().filter(|p| !p.is_file()) {
        return Err(Stopped(format!("failed to read kubeconfig {}: no such file", path.display())));
    }
    if args.upgrade_to.is_some() && args.cluster != Cluster::K3s {
        return Err(Stopped(format!(
            "failed to use --upgrade-to with --cluster {}: only the kit (k3s) joins new workers; kind upgrades in place and an existing cluster's nodes are not the harness's",
            format!("{:?}", args.cluster).to_lowercase()
        )));
    }
    let kustomize = Kustomize::locate(args.kustomize.as_deref()).map_err(|e| Stopped::from(&e))?;
    let envs = Env::select(args.env.as_deref().unwrap_or_default(), &args.fixtures).map_err(|e| Stopped::from(&e))?;
    let baseline = match &args.baseline {
        Some(dir) => Some(static_tier::render_baseline(&kustomize, dir, &envs).map_err(|e| Stopped::from(&e))?),
        None => None,
    };
    let options = StaticOptions { envs, infra: args.infra.clone(), fixtures: args.fixtures.clone(), kustomize };
    Ok(Plan { options, baseline })
}

/// The static tier, its failures (every fact with `--verbose`) and the
/// predicted HPA timelines said.
fn static_step(args: &Args, plan: &Plan, console: &Console) -> Result<StaticRun, Stopped> {
    let static_run = static_tier::run(&plan.options).map_err(|e| Stopped::from(&e))?;
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
    Ok(static_run)
}

/// The live run's options, from the command line.
fn live_options(args: &Args, baseline: Option<Baseline>, report_dir: &Path) -> LiveOptions {
    LiveOptions {
        app_image: args.app_image.clone(),
        tool_archive: args.tool_archive.clone(),
        baseline,
        fit: match args.fit {
            Fit::Auto => None,
            Fit::Factor(n) => Some(n),
        },
        agents: args.agents,
        report_dir: report_dir.to_owned(),
        profile: args.profile,
        skip_checks: args.skip_checks.clone(),
        timeouts: timeouts(args),
        tool_image: args.tool_image.clone(),
        provider: match args.cluster {
            Cluster::Existing => Provider::Existing(existing_options(args)),
            Cluster::Kind => Provider::Kind { node_image: args.node_image.clone() },
            Cluster::K3s => Provider::Kit {
                reuse: args.reuse,
                node_image: args.node_image.clone(),
                upgrade_to: args.upgrade_to.clone(),
            },
        },
    }
}

/// The live tier when asked for: its run, or the tier recorded as not
/// verified (no container engine: exit 3, never a pass).
fn live_step(
    args: &Args,
    baseline: Option<Baseline>,
    static_run: &StaticRun,
    report_dir: &Path,
    console: &Console,
) -> Result<(Option<LiveRun>, Vec<Skipped>), Stopped> {
    if args.tier == Tier::Static {
        return Ok((None, Vec::new()));
    }
    let requested = format!("cluster {:?}, profile {}", args.cluster, args.profile).to_lowercase();
    let opts = live_options(args, baseline, report_dir);
    let runtime = runtime().map_err(|e| Stopped::from(&e))?;
    // A panic must not leave an existing cluster changed: its journal is
    // replayed before the error is reported.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(cbam_live_tier::run::run(static_run, &opts))
    }));
    drop(runtime);
    let Ok(outcome) = outcome else {
        let undone = match &opts.provider {
            Provider::Existing(existing) => runtime_cleanup(existing, &opts.timeouts),
            Provider::Kit { .. } => "a kit cluster is swept by the next run".into(),
            Provider::Kind { .. } => "a kind cluster of this name is deleted by the next run".into(),
        };
        return Err(Stopped(format!("failed to finish the live tier: it panicked (see above); {undone}")));
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
            Ok((Some(run), Vec::new()))
        }
        Err(LiveError::NoEngine) => {
            let reason = "no container engine could be reached (run `just engine`)";
            eprintln!("\n!!! LIVE TIER NOT VERIFIED ({requested}): {reason}. Not verified is not passed (exit 3).\n");
            Ok((None, vec![Skipped { tier: "live", reason: format!("{reason} (requested: {requested})") }]))
        }
        Err(err) => Err(Stopped::from(&err)),
    }
}

/// The evidence written, the verdict said, the asked-for documents printed;
/// the verdict's exit code.
fn publish(
    args: &Args,
    evidence: &Evidence<'_>,
    report_dir: &Path,
    target: &Path,
    console: &Console,
) -> Result<u8, Stopped> {
    if let Err(err) = report::write(report_dir, evidence) {
        eprintln!("error: {}", chain(&err));
        return Ok(EXIT_ERROR);
    }
    let counts = report::counts(evidence);
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
            Format::Json => println!("{:#}", report::summary_json(evidence)),
            Format::Sarif => println!("{:#}", sarif::log(evidence)),
            Format::Github => {
                for line in annotations::lines(evidence.outcomes(), &target.display().to_string()) {
                    println!("{line}");
                }
            }
        }
    }
    Ok(counts.verdict().exit_code())
}
