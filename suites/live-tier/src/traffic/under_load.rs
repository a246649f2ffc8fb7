//! Load during a disruption, and its judgement: two open-loop probers run
//! while a rollout or a drain happens, one through the real ingress from this
//! host (TLS, SNI, within the documented rate limit) and one from a tool pod
//! to the Service (`prober_pod`, which also starts pipeline runs and waits
//! for each to end), beside a sampler of Ready replicas. The
//! disruption marks its phases; the evidence is every request, a per-second
//! plot and one line in summary.md; the facts hold the budgets of
//! fixtures/disruption.yaml.

use std::path::Path;
use std::time::{Duration, Instant};

use cbam_prober::runs::RunTally;
use cbam_prober::schedule::{Plan, run};
use cbam_prober::summary::Summary;
use cbam_prober::{Answer, Kind, POD_DRAINING, Record, SERVED_BY, Stream};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use cbam_error_chain::render as chain;
use cbam_model::evidence_file::write_atomic;
use cbam_model::outcome::Recorder;

use crate::app_pods::{WorkloadError, selector};
use crate::context::LiveContext;
use crate::judges::disruption::Evidence;
use crate::plots::disruption_plot;
use crate::traffic::held_runs::HeldRuns;
use crate::traffic::https::{self as edge, EdgeError};
use crate::traffic::prober_pod::{self, InCluster, Placement, ProberPodError};
use crate::traffic::ready_sampler::ReadySampler;

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("start the in-cluster prober")]
    InCluster(#[from] ProberPodError),
    #[error("start the ingress prober")]
    Ingress(#[from] EdgeError),
    #[error("find the app's pods")]
    Workload(#[from] WorkloadError),
}

/// Both probers and the sampler, running.
pub(crate) struct Session {
    t0: Instant,
    service: InCluster,
    ingress_started: Instant,
    ingress_stop: watch::Sender<bool>,
    ingress: JoinHandle<Vec<Record>>,
    sampler: ReadySampler,
    phases: Vec<(Instant, String)>,
    held: HeldRuns,
    settle: Duration,
    limit: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("phases", &self.phases).finish_non_exhaustive()
    }
}

/// A reqwest outcome as the prober classifies it.
fn classify(result: Result<reqwest::Response, reqwest::Error>) -> Answer {
    match result {
        Ok(response) => {
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
            let (pod, draining) = (header(SERVED_BY).map(str::to_owned), header(POD_DRAINING) == Some("true"));
            Answer::status(response.status().as_u16(), pod).draining(draining)
        }
        Err(e) if e.is_timeout() => Answer::error(Kind::Timeout, chain(&e)),
        Err(e) => {
            let text = chain(&e);
            let kind = if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
                Kind::Tls
            } else if e.is_connect() {
                Kind::Connect
            } else {
                Kind::Reset
            };
            Answer::error(kind, text)
        }
    }
}

/// How long a session's load may go on, where its tool pod runs and how
/// many pipeline runs it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// The probers stop by themselves after this (a session never finished).
    pub(crate) bound: Duration,
    pub(crate) placement: Placement,
    /// Pipeline runs started per second; None: the load's own rate.
    pub(crate) runs_per_second: Option<f64>,
}

impl Shape {
    /// One rollout or drain: bounded by the longest the waits allow, and
    /// then some; the tool pod anywhere.
    pub(crate) fn one_disruption(cx: &LiveContext<'_>) -> Self {
        let settle = Duration::from_secs(cx.disruption.load.settle_seconds);
        let bound = cx.timeouts.rollout + cx.timeouts.drain * 2 + settle * 2 + Duration::from_secs(30);
        Shape { bound, placement: Placement::Anywhere, runs_per_second: None }
    }
}

impl Session {
    /// Starts the in-cluster prober, then the ingress prober and the sampler.
    async fn start(cx: &LiveContext<'_>, shape: Shape) -> Result<Self, LoadError> {
        let load = &cx.disruption.load;
        let settle = Duration::from_secs(load.settle_seconds);
        let bound = shape.bound;
        let selector = selector(cx).await?;
        let t0 = Instant::now();
        let run_rate = shape.runs_per_second.unwrap_or(load.runs.per_second);
        let service = prober_pod::start(cx, load.service_per_second, run_rate, bound, shape.placement).await?;
        let client = edge::https(cx)?;
        let url = edge::url(cx, &load.path);
        let timeout = Duration::from_millis(load.timeout_ms);
        let log = cx.ingress_log.clone();
        let (ingress_stop, stop) = watch::channel(false);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let plan = Plan::new(load.ingress_per_second, bound);
        let ingress_started = Instant::now();
        let ingress = tokio::spawn(async move {
            let send = move |_| {
                let (client, url, log) = (client.clone(), url.clone(), log.clone());
                async move {
                    let sent = Instant::now();
                    match tokio::time::timeout(timeout, client.get(&url).send()).await {
                        Ok(Ok(response)) => {
                            log.record(sent, !edge::rate_limited(&response));
                            classify(Ok(response))
                        }
                        Ok(Err(e)) => {
                            log.record(sent, true);
                            classify(Err(e))
                        }
                        Err(_) => Answer::error(Kind::Timeout, format!("no answer within {} ms", timeout.as_millis())),
                    }
                }
            };
            run(plan, stop, send, tx).await;
            let mut records = Vec::new();
            while let Some(r) = rx.recv().await {
                records.push(r);
            }
            records
        });
        let sampler = ReadySampler::start(cx, selector);
        Ok(Session {
            t0,
            service,
            ingress_started,
            ingress_stop,
            ingress,
            sampler,
            phases: vec![(t0, "load".to_owned())],
            held: HeldRuns::default(),
            settle,
            // A run sent just before the stop answers after its length.
            limit: timeout + Duration::from_secs_f64(load.runs.duration_seconds) + Duration::from_secs(5),
        })
    }

    /// Starts a session for one disruption, or records on `object` why the
    /// load of `what` could not start (a half-made tool pod removed).
    pub(crate) async fn open(cx: &LiveContext<'_>, r: &mut Recorder, object: &str, what: &str) -> Option<Self> {
        Self::open_shaped(cx, r, object, what, Shape::one_disruption(cx)).await
    }

    /// As `open`, with its own bound and tool pod placement.
    pub(crate) async fn open_shaped(
        cx: &LiveContext<'_>,
        r: &mut Recorder,
        object: &str,
        what: &str,
        shape: Shape,
    ) -> Option<Self> {
        match Self::start(cx, shape).await {
            Ok(session) => Some(session),
            Err(e) => {
                prober_pod::remove(cx).await;
                let subject = format!("load during the {what}");
                match &e {
                    // The harness's tool could not run: nothing was observed.
                    LoadError::InCluster(tool) if tool.is_the_tools() => {
                        r.skip(object, &subject, "both probers running", chain(&e));
                    }
                    _ => r.record(object, &subject, "both probers running", chain(&e), false),
                }
                None
            }
        }
    }

    pub(crate) fn mark(&mut self, label: impl Into<String>) {
        self.phases.push((Instant::now(), label.into()));
    }

    /// One run of the documented held length started on each of `pods`,
    /// which the caller is about to stop (each must be let finish it).
    pub(crate) async fn hold_runs(&mut self, cx: &LiveContext<'_>, pods: &[String]) {
        self.held.hold(cx, pods, self.t0).await;
        self.mark(format!("{} held runs started", pods.len()));
    }

    /// The documented load before or after the disruption.
    pub(crate) async fn settle(&self) {
        tokio::time::sleep(self.settle).await;
    }

    /// Stops everything (the tool pod removed); every request sent has
    /// finished or timed out.
    pub(crate) async fn finish(self, cx: &LiveContext<'_>) -> Evidence {
        let ms = |t0: Instant, at: Instant| at.saturating_duration_since(t0).as_secs_f64() * 1000.0;
        let shift = |records: &mut Vec<Record>, base: Instant| {
            let offset = ms(self.t0, base);
            for r in records.iter_mut() {
                r.scheduled_ms += offset;
                r.sent_ms += offset;
            }
            records.sort_by(|a, b| a.scheduled_ms.total_cmp(&b.scheduled_ms));
        };
        let _ = self.ingress_stop.send(true);
        let (service_started, t0) = (self.service.started, self.t0);
        let (records, prober_usage, said) = self.service.stop(self.limit).await;
        let (mut runs, mut service): (Vec<Record>, Vec<Record>) =
            records.into_iter().partition(|r| r.stream == Stream::Run);
        let mut ingress =
            tokio::time::timeout(self.limit, self.ingress).await.ok().and_then(Result::ok).unwrap_or_default();
        shift(&mut service, service_started);
        shift(&mut runs, service_started);
        shift(&mut ingress, self.ingress_started);
        let ready_by_node: Vec<_> =
            self.sampler.stop_per_node().await.into_iter().map(|(at, nodes)| (ms(t0, at), nodes)).collect();
        let ready = ready_by_node.iter().map(|(at, nodes)| (*at, nodes.values().sum())).collect();
        let phases = self.phases.into_iter().map(|(at, label)| (ms(t0, at), label)).collect();
        // Started before a stop, a held run is over by now unless it was cut.
        let held = self.held.finish(self.limit + Duration::from_secs_f64(cx.disruption.load.held_run_seconds)).await;
        prober_pod::remove(cx).await;
        Evidence { ingress, service, runs, held, ready, ready_by_node, phases, said, prober_usage }
    }
}

/// Writes `disruption/<name>.json` (every request) and `.svg`, and returns
/// the report's line for it.
pub(crate) fn write_evidence(report_dir: &Path, name: &str, title: &str, ev: &Evidence) -> String {
    let dir = report_dir.join("disruption");
    let (ingress, service) = (Summary::of(&ev.ingress), Summary::of(&ev.service));
    let doc = json!({
        "name": name, "phases": ev.phases, "ready": ev.ready, "ready_by_node": ev.ready_by_node,
        "ingress": {"summary": ingress, "requests": ev.ingress},
        "service": {"summary": service, "requests": ev.service},
        "runs": {"tally": RunTally::of(&ev.runs), "requests": ev.runs},
        "held_runs": ev.held,
        "in_cluster_prober": ev.prober_usage,
    });
    let written = write_atomic(&dir.join(format!("{name}.json")), &serde_json::to_string(&doc).unwrap_or_default())
        .and_then(|()| write_atomic(&dir.join(format!("{name}.svg")), &disruption_plot::svg(title, ev)));
    let files = match written {
        Ok(()) => format!("`disruption/{name}.json`, `disruption/{name}.svg`"),
        Err(e) => format!("not written ({})", chain(&e)),
    };
    let runs = RunTally::of(&ev.runs);
    let cost = ev.prober_usage.map_or_else(|| "not reported".to_owned(), |u| u.to_string());
    format!(
        "- **{title}**: ingress {ingress}; Service {service}; pipeline runs {runs}; in-cluster prober {cost}. \
         Evidence: {files}.\n"
    )
}
