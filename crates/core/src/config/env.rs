//! `envs/<env>.toml`: one environment's definition.
//!
//! Enumerations, durations and cron expressions are read as strings and
//! checked in [`validate`] so one pass reports every bad field; serde would
//! stop at the first. Field documentation lives on the raw types (what a
//! user writes) and in docs/config.md.

use super::Problem;
use crate::schedule::{Schedule, Window, WindowKind};
use crate::source::{Node, TreeReader};
use serde::Deserialize;
use std::time::Duration;

/// Variables a PromQL template may use, filled in per analysis.
pub const TEMPLATE_VARIABLES: &[&str] =
    &["app", "env", "namespace", "version", "interval", "window"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    /// Git branch holding this environment's tree; must be `env/<name>`-style (under `env/`).
    branch: String,
    /// Kustomize overlay directory, relative to the repo root.
    overlay: String,
    /// Environment a release is promoted to after it succeeds here.
    next: Option<String>,
    /// Where the environment runs.
    target: RawTarget,
    /// Canary steps and analysis settings.
    rollout: RawRollout,
    /// Service level objectives: the health gate and SLO drift read these.
    #[serde(default)]
    slo: Vec<RawSlo>,
    /// Gate modes.
    #[serde(default)]
    gates: RawGates,
    /// Rules for promotions into this environment.
    #[serde(default)]
    promotion: RawPromotion,
    /// Drift detection schedule and mode.
    #[serde(default)]
    drift: RawDrift,
    /// Scheduled drills (game days) the daemon runs in this environment.
    #[serde(default)]
    drill: Vec<RawDrill>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    /// Crontab expression of the game day (5 fields or a macro such as `@weekly`).
    schedule: String,
    /// IANA time zone the schedule is read in.
    #[serde(default = "utc")]
    timezone: String,
    /// rollback, bad-signature, config-drift, git-outage, metrics-outage, crash-mid-rollout.
    scenario: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    /// `podman` (the local stack) or `kubernetes`.
    kind: String,
    /// Namespace the rendered objects are applied to.
    namespace: String,
    /// Name of the workload (Deployment) whose traffic the canary splits.
    app: String,
    /// kubeconfig context (kubernetes only; default: the current context).
    context: Option<String>,
}

fn default_intervals() -> u32 {
    3
}
fn default_inconclusive() -> u32 {
    3
}
fn default_min_requests() -> u64 {
    20
}
fn default_bake() -> String {
    "0s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    /// Canary traffic percentages, strictly increasing, ending at 100.
    steps: Vec<i64>,
    /// Time between two analysis evaluations (humantime: `10s`, `1m`).
    analysis_interval: String,
    /// Healthy intervals needed at a step before moving on.
    #[serde(default = "default_intervals")]
    intervals_per_step: u32,
    /// Unhealthy intervals tolerated per step; one more aborts.
    #[serde(default)]
    failure_limit: u32,
    /// Inconclusive intervals (no data, provider down) tolerated per step; one more aborts.
    #[serde(default = "default_inconclusive")]
    inconclusive_limit: u32,
    /// Minimum requests per interval; below it the interval is inconclusive.
    #[serde(default = "default_min_requests")]
    min_requests: u64,
    /// Time at 100% before the release is promoted onwards.
    #[serde(default = "default_bake")]
    bake: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    /// Unique name, used in reports and metrics.
    name: String,
    /// `error_ratio` (query returns a ratio of failed requests) or `latency` (query returns seconds).
    kind: String,
    /// Target fraction of good events, in (0, 1): 0.999 means 99.9%.
    objective: f64,
    /// Latency SLOs: the duration a good request stays under.
    threshold: Option<String>,
    /// Allowed canary regression over the stable baseline: absolute for
    /// `error_ratio` (0.01 = one point), relative for `latency` (0.25 = +25%).
    max_regression: Option<f64>,
    /// Latency SLOs: a regression counts only when the canary is also
    /// this much slower than stable in absolute terms (default 25ms): a
    /// few-millisecond p99 moves by tens of percent with one slow request
    /// or one histogram bucket.
    min_regression: Option<String>,
    /// PromQL template; `{{namespace}}`, `{{version}}`, `{{interval}}`, … are filled in.
    query: String,
}

fn enforce() -> String {
    "enforce".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGates {
    /// `enforce` (a failure stops the release) or `warn` (reported, not blocking).
    #[serde(default = "enforce")]
    signature: String,
    #[serde(default = "enforce")]
    vulnerability: String,
    #[serde(default = "enforce")]
    admission: String,
    /// Rego packages the admission gate evaluates (conftest's --namespace).
    #[serde(default = "main_namespace")]
    admission_namespaces: Vec<String>,
    /// The signature gate also requires, per image, a verified promotion
    /// attestation out of this env.
    require_promotion_from: Option<String>,
}

fn main_namespace() -> Vec<String> {
    vec![crate::gates::rego_check::PACKAGE.to_string()]
}

impl Default for RawGates {
    fn default() -> Self {
        Self {
            signature: enforce(),
            vulnerability: enforce(),
            admission: enforce(),
            admission_namespaces: main_namespace(),
            require_promotion_from: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromotion {
    /// Promotion into this environment needs an approval signed by a key in `policies/approvers`.
    #[serde(default)]
    requires_approval: bool,
    /// When promotions into this environment may land; empty means any time.
    #[serde(default)]
    windows: Vec<RawWindow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    /// Crontab expression (minute hour day-of-month month day-of-week, or
    /// a macro such as `@daily`) opening the window.
    schedule: String,
    /// How long the window stays open.
    duration: String,
    /// IANA time zone the schedule is read in.
    #[serde(default = "utc")]
    timezone: String,
    /// `allow` (promotions land only inside some allow window) or `deny`
    /// (a freeze: nothing lands while it is open).
    #[serde(default = "allow")]
    kind: String,
}

fn utc() -> String {
    "UTC".into()
}
fn allow() -> String {
    "allow".into()
}

fn report() -> String {
    "report".into()
}
fn default_grace() -> String {
    "5m".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrift {
    /// Crontab expression for periodic drift reports; none means on demand only.
    schedule: Option<String>,
    /// IANA time zone `schedule` is read in.
    #[serde(default = "utc")]
    timezone: String,
    /// `report` (default) or `heal` (re-apply desired state after `grace`).
    #[serde(default = "report")]
    mode: String,
    /// How long config drift must persist before `heal` re-applies.
    #[serde(default = "default_grace")]
    grace: String,
    /// Extra fields to ignore, like Argo CD's ignoreDifferences:
    /// `[{ kind = "Deployment", path = "/spec/replicas" }]` (`*` for any kind).
    #[serde(default)]
    ignore: Vec<RawIgnore>,
    /// Multi-window burn-rate alerts; default: the SRE workbook's
    /// 1h/5m at 14.4× (page), 6h/30m at 6× (page), 3d/6h at 1× (ticket).
    burn_windows: Option<Vec<RawBurnWindow>>,
    /// Window the current value is measured over for regression against
    /// the baseline recorded at the last promotion.
    #[serde(default = "default_regression_window")]
    regression_window: String,
    /// SLO drift found this long after a release finished in this env hands
    /// that release back to the engine: rolled back and reverted (default:
    /// the rollout's bake time).
    revert_within: Option<String>,
}

fn default_regression_window() -> String {
    "5m".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIgnore {
    kind: String,
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBurnWindow {
    long: String,
    short: String,
    factor: f64,
    /// `page` or `ticket`.
    severity: String,
}

impl Default for RawDrift {
    fn default() -> Self {
        Self {
            schedule: None,
            timezone: utc(),
            mode: report(),
            grace: default_grace(),
            ignore: Vec::new(),
            burn_windows: None,
            regression_window: default_regression_window(),
            revert_within: None,
        }
    }
}

/// A validated environment.
#[derive(Debug, Clone)]
pub struct Env {
    pub name: String,
    /// Repo-relative path of the file it came from.
    pub file: String,
    pub branch: String,
    pub overlay: String,
    pub next: Option<String>,
    pub target: Target,
    pub rollout: Rollout,
    pub slos: Vec<Slo>,
    pub gates: Gates,
    pub promotion: PromotionPolicy,
    pub drift: Drift,
    /// Drills the daemon runs on a schedule: (cron, scenario).
    pub drills: Vec<(Schedule, crate::drill::Scenario)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Podman,
    Kubernetes,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub kind: TargetKind,
    pub namespace: String,
    pub app: String,
    pub context: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Rollout {
    pub steps: Vec<u8>,
    pub analysis_interval: Duration,
    pub intervals_per_step: u32,
    pub failure_limit: u32,
    pub inconclusive_limit: u32,
    pub min_requests: u64,
    pub bake: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SloKind {
    ErrorRatio,
    Latency,
}

#[derive(Debug, Clone)]
pub struct Slo {
    pub name: String,
    pub kind: SloKind,
    pub objective: f64,
    pub threshold: Option<Duration>,
    pub max_regression: Option<f64>,
    /// Latency only: the smallest absolute regression that counts (zero
    /// for error ratios, whose `max_regression` is absolute already).
    pub min_regression: Duration,
    pub query: String,
}

/// Most SLOs one env may define (each is queried for canary and baseline
/// every analysis interval).
pub const MAX_SLOS: usize = 32;
/// Drift checks run at most this often.
pub const MIN_CHECK_GAP: Duration = Duration::from_secs(60);
/// Drills run at most this often.
pub const MIN_DRILL_GAP: Duration = Duration::from_secs(3600);

/// Default `min_regression` of latency SLOs.
pub const DEFAULT_MIN_REGRESSION: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    Enforce,
    Warn,
}

#[derive(Debug, Clone)]
pub struct Gates {
    pub signature: GateMode,
    pub vulnerability: GateMode,
    pub admission: GateMode,
    /// Rego packages (and the packages under them) the admission gate
    /// evaluates; `["main"]` by default.
    pub admission_namespaces: Vec<String>,
    /// Each image must carry a verified promotion attestation (SLSA VSA)
    /// out of this env, signed by a key of `policies/trust.toml`.
    pub require_promotion_from: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PromotionPolicy {
    pub requires_approval: bool,
    pub windows: Vec<Window>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    Report,
    Heal,
}

#[derive(Debug, Clone)]
pub struct Drift {
    pub schedule: Option<Schedule>,
    pub mode: DriftMode,
    pub grace: Duration,
    /// (kind or `*`, path) pairs ignored on top of the defaults.
    pub ignore: Vec<(String, String)>,
    pub burn_windows: Vec<BurnWindow>,
    pub regression_window: Duration,
    pub revert_within: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Page,
    Ticket,
}

/// One multi-window burn-rate alert: burning when the burn rate exceeds
/// `factor` over both `long` and `short`.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnWindow {
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
    pub severity: Severity,
}

impl BurnWindow {
    /// The SRE workbook's multi-window, multi-burn-rate alerts.
    pub fn workbook() -> Vec<BurnWindow> {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let m = |n: u64| Duration::from_secs(n * 60);
        vec![
            BurnWindow {
                long: h(1),
                short: m(5),
                factor: 14.4,
                severity: Severity::Page,
            },
            BurnWindow {
                long: h(6),
                short: m(30),
                factor: 6.0,
                severity: Severity::Page,
            },
            BurnWindow {
                long: h(72),
                short: h(6),
                factor: 1.0,
                severity: Severity::Ticket,
            },
        ]
    }
}

/// Collects problems for one file.
struct Check<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Check<'_> {
    fn add(&mut self, field: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.problems
            .push(Problem::new(self.file, field, message, fix));
    }

    fn duration(&mut self, field: &str, value: &str, min: Duration, max: Duration) -> Duration {
        match humantime::parse_duration(value) {
            Ok(d) if d < min || d > max => {
                self.add(
                    field,
                    format!("{value:?} is out of range"),
                    format!(
                        "use a duration between {} and {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                min
            }
            Ok(d) => d,
            Err(e) => {
                self.add(
                    field,
                    format!("{value:?} is not a duration ({e})"),
                    "write it like \"30s\", \"5m\" or \"1h 30m\"",
                );
                min
            }
        }
    }

    /// A crontab schedule `value` (field `field`) in the zone `tz` (field `tz_field`).
    fn cron(&mut self, field: &str, value: &str, tz_field: &str, tz: &str) -> Option<Schedule> {
        if let Err(e) = crate::schedule::cron::parse_timezone(tz) {
            self.add(tz_field, e.message, e.fix);
            return None;
        }
        match Schedule::parse(value, tz) {
            Ok(s) => Some(s),
            Err(e) => {
                self.add(field, e.message, e.fix);
                None
            }
        }
    }

    /// A schedule must fire again (within 400 days: a window that never
    /// opens holds promotions for ever), and schedules that start work
    /// (`min_gap`) no more often than that.
    fn fires(&mut self, field: &str, s: &Schedule, min_gap: Option<Duration>) {
        let now = chrono::Utc::now();
        let next: Vec<_> = s.after(now).take(10).collect();
        match next.first() {
            None => self.add(
                field,
                "never fires again",
                "give a schedule that recurs (check the year and day fields)",
            ),
            Some(first) if *first - now > chrono::Duration::days(400) => self.add(
                field,
                format!("next fires at {first}, over 400 days away"),
                "give a schedule that recurs within the year",
            ),
            Some(_) => {
                if let Some(min) = min_gap {
                    let gap = next
                        .windows(2)
                        .map(|w| w[1] - w[0])
                        .min()
                        .and_then(|d| d.to_std().ok());
                    if let Some(gap) = gap.filter(|g| *g < min) {
                        self.add(
                            field,
                            format!("fires every {}s", gap.as_secs()),
                            format!(
                                "run it at most once every {}s (e.g. \"0 */6 * * *\")",
                                min.as_secs()
                            ),
                        );
                    }
                }
            }
        }
    }

    fn one_of<T: Copy>(&mut self, field: &str, value: &str, options: &[(&str, T)]) -> T {
        if let Some((_, v)) = options.iter().find(|(k, _)| *k == value) {
            return *v;
        }
        let names: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
        self.add(
            field,
            format!("{value:?} is not a valid value"),
            format!("use one of: {}", names.join(", ")),
        );
        options[0].1
    }

    /// A list of Rego package paths (`main`, `k8s.security`).
    fn rego_packages(&mut self, field: &str, value: &[String]) -> Vec<String> {
        if value.is_empty() {
            self.add(
                field,
                "is empty: the admission gate would evaluate nothing",
                "list at least one package, e.g. [\"main\"]",
            );
        }
        for (i, p) in value.iter().enumerate() {
            let ok = !p.is_empty()
                && p.split('.').all(|part| {
                    part.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if let Some(rest) = p.strip_prefix("data.").filter(|_| ok) {
                self.add(
                    &format!("{field}[{i}]"),
                    format!("{p:?} starts with data., the root every package lives under"),
                    format!("write the package as its package line does: \"{rest}\""),
                );
            } else if !ok {
                self.add(
                    &format!("{field}[{i}]"),
                    format!("{p:?} is not a Rego package path"),
                    "write it as in the policy's package line, e.g. \"main\" or \"k8s.security\" (no data. prefix)",
                );
            }
        }
        value.to_vec()
    }
}

/// Lower-case DNS label: what env names, namespaces and app names must be.
pub fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_lowercase()
        && !s.ends_with('-')
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses and validates one env file. `Err` when the file does not parse
/// at all; otherwise the env (best effort) and its field problems.
pub(super) fn parse(
    name: &str,
    file: &str,
    text: &str,
    tree: &dyn TreeReader,
) -> Result<(Env, Vec<Problem>), Problem> {
    let raw: RawEnv = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let message = e.message().trim().replace('\n', " ");
        let at = line.map(|l| format!("line {l}")).unwrap_or_default();
        Problem::new(
            file,
            at,
            message,
            "fix the TOML (fields are documented in docs/config.md)",
        )
    })?;
    Ok(validate(name, file, raw, tree))
}

fn validate(name: &str, file: &str, raw: RawEnv, tree: &dyn TreeReader) -> (Env, Vec<Problem>) {
    let mut c = Check {
        file,
        problems: Vec::new(),
    };
    if !is_dns_label(name, 40) {
        c.add(
            "",
            format!("environment name {name:?} is not valid"),
            "rename the file to <name>.toml with a lower-case name of letters, digits and '-' (max 40)",
        );
    }

    // branch
    // An env is defined only by its own branch: the name fixes the branch,
    // so no file can point an env at another env's branch.
    let expected = format!("env/{name}");
    if raw.branch != expected {
        c.add(
            "branch",
            format!(
                "{:?}, but environment {name} is defined only by its own branch {expected:?}",
                raw.branch
            ),
            format!("set branch = {expected:?}"),
        );
    }

    // overlay
    match tree.resolve(&raw.overlay) {
        Err(e) => c.add(
            "overlay",
            e.to_string(),
            "use a directory inside the repo, e.g. \"overlays/<env>\"",
        ),
        Ok(r) if r.node == Node::Missing => c.add(
            "overlay",
            format!("{} does not exist", raw.overlay),
            "create it with a kustomization.yaml, or fix the path",
        ),
        Ok(r) if r.node != Node::Dir => c.add(
            "overlay",
            format!("{} is not a directory", raw.overlay),
            "point it at the overlay directory, not a file",
        ),
        Ok(r) => {
            let dir = r.path();
            let has_kustomization = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
                .iter()
                .any(|f| tree.exists(&format!("{dir}/{f}")).unwrap_or(false));
            if !has_kustomization {
                c.add(
                    "overlay",
                    format!("{} has no kustomization.yaml", raw.overlay),
                    "add a kustomization.yaml to the overlay directory",
                );
            }
        }
    }

    if let Some(next) = &raw.next
        && !is_dns_label(next, 40)
    {
        c.add(
            "next",
            format!("{next:?} is not a valid environment name"),
            "name an existing envs/<name>.toml",
        );
    }
    if raw.next.as_deref() == Some(name) {
        c.add(
            "next",
            "an environment cannot promote into itself",
            "name the following environment, or remove next",
        );
    }

    // target
    let kind = c.one_of(
        "target.kind",
        &raw.target.kind,
        &[
            ("podman", TargetKind::Podman),
            ("kubernetes", TargetKind::Kubernetes),
        ],
    );
    if !is_dns_label(&raw.target.namespace, 63) {
        c.add(
            "target.namespace",
            format!("{:?} is not a valid namespace", raw.target.namespace),
            "use a lower-case DNS label (letters, digits, '-')",
        );
    }
    if !is_dns_label(&raw.target.app, 63) {
        c.add(
            "target.app",
            format!("{:?} is not a valid app name", raw.target.app),
            "use the Deployment's name (a lower-case DNS label)",
        );
    }
    if raw.target.context.is_some() && kind != TargetKind::Kubernetes {
        c.add(
            "target.context",
            "context applies only to kind = \"kubernetes\"",
            "remove it, or set kind = \"kubernetes\"",
        );
    }

    // rollout
    let r = &raw.rollout;
    let mut steps = Vec::new();
    if r.steps.is_empty() {
        c.add(
            "rollout.steps",
            "no steps",
            "list canary weights ending at 100, e.g. [10, 50, 100]",
        );
    } else {
        let mut prev = 0;
        for (i, &s) in r.steps.iter().enumerate() {
            if !(1..=100).contains(&s) {
                c.add(
                    &format!("rollout.steps[{i}]"),
                    format!("{s} is not a percentage in 1..=100"),
                    "use weights between 1 and 100",
                );
            } else if s <= prev {
                c.add(
                    &format!("rollout.steps[{i}]"),
                    format!("{s} does not rise above the previous step {prev}"),
                    "list weights in strictly increasing order",
                );
            } else {
                steps.push(s as u8);
            }
            prev = prev.max(s);
        }
        if r.steps.last() != Some(&100) {
            c.add(
                "rollout.steps",
                "the last step is not 100",
                "end the steps with 100 (full rollout)",
            );
        }
    }
    let analysis_interval = c.duration(
        "rollout.analysis_interval",
        &r.analysis_interval,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    if r.intervals_per_step == 0 || r.intervals_per_step > 100 {
        c.add(
            "rollout.intervals_per_step",
            format!("{} is out of range", r.intervals_per_step),
            "use 1..=100",
        );
    }
    if r.inconclusive_limit > 100 {
        c.add(
            "rollout.inconclusive_limit",
            format!("{} is out of range", r.inconclusive_limit),
            "use 0..=100",
        );
    }
    if r.failure_limit >= r.intervals_per_step.max(1) {
        c.add(
            "rollout.failure_limit",
            format!(
                "{} tolerates as many failures as there are intervals per step",
                r.failure_limit
            ),
            "keep failure_limit below intervals_per_step",
        );
    }
    if r.min_requests == 0 {
        c.add(
            "rollout.min_requests",
            "0 would let an interval with no traffic count as healthy",
            "set a traffic floor of at least 1 request per interval",
        );
    }
    let bake = c.duration(
        "rollout.bake",
        &r.bake,
        Duration::ZERO,
        Duration::from_secs(7 * 86400),
    );

    // SLOs
    if raw.slo.is_empty() {
        c.add(
            "slo",
            "no SLOs: the canary would have no health gate",
            "add at least one [[slo]] (see docs/config.md)",
        );
    }
    if raw.slo.len() > MAX_SLOS {
        c.add(
            "slo",
            format!("{} SLOs, over the limit of {MAX_SLOS}", raw.slo.len()),
            "keep the SLOs that decide a release; each costs PromQL queries every interval",
        );
    }
    let mut slos = Vec::new();
    for (i, s) in raw.slo.iter().enumerate().take(MAX_SLOS) {
        let f = |field: &str| format!("slo[{i}].{field}");
        if !is_dns_label(&s.name, 63) {
            c.add(
                &f("name"),
                format!("{:?} is not a valid SLO name", s.name),
                "use lower-case letters, digits and '-'",
            );
        }
        if raw.slo[..i].iter().any(|o| o.name == s.name) {
            c.add(
                &f("name"),
                format!("SLO {:?} is defined twice", s.name),
                "give each SLO a unique name",
            );
        }
        let kind = c.one_of(
            &f("kind"),
            &s.kind,
            &[
                ("error_ratio", SloKind::ErrorRatio),
                ("latency", SloKind::Latency),
            ],
        );
        if !(s.objective > 0.0 && s.objective < 1.0) {
            c.add(
                &f("objective"),
                format!("{} is not a fraction in (0, 1)", s.objective),
                "write the objective as a fraction: 0.999 for 99.9%",
            );
        }
        let threshold = match (kind, &s.threshold) {
            (SloKind::Latency, Some(t)) => Some(c.duration(
                &f("threshold"),
                t,
                Duration::from_millis(1),
                Duration::from_secs(600),
            )),
            (SloKind::Latency, None) => {
                c.add(
                    &f("threshold"),
                    "a latency SLO needs a threshold",
                    "add threshold = \"300ms\" (the latency a good request stays under)",
                );
                None
            }
            (SloKind::ErrorRatio, Some(_)) => {
                c.add(
                    &f("threshold"),
                    "threshold applies only to latency SLOs",
                    "remove it; the objective sets the error budget",
                );
                None
            }
            (SloKind::ErrorRatio, None) => None,
        };
        if let Some(m) = s.max_regression {
            let ok = match kind {
                SloKind::ErrorRatio => (0.0..=1.0).contains(&m),
                SloKind::Latency => (0.0..=10.0).contains(&m),
            };
            if !ok {
                c.add(
                    &f("max_regression"),
                    format!("{m} is out of range"),
                    "use 0..=1 (absolute) for error_ratio, 0..=10 (relative) for latency",
                );
            }
        }
        let min_regression = match (kind, &s.min_regression) {
            (SloKind::Latency, Some(d)) => c.duration(
                &f("min_regression"),
                d,
                Duration::ZERO,
                Duration::from_secs(60),
            ),
            (SloKind::Latency, None) => DEFAULT_MIN_REGRESSION,
            (SloKind::ErrorRatio, Some(_)) => {
                c.add(
                    &f("min_regression"),
                    "min_regression applies only to latency SLOs",
                    "remove it; max_regression of an error_ratio SLO is absolute already",
                );
                Duration::ZERO
            }
            (SloKind::ErrorRatio, None) => Duration::ZERO,
        };
        check_template(&mut c, &f("query"), &s.query);
        slos.push(Slo {
            name: s.name.clone(),
            kind,
            objective: s.objective,
            threshold,
            max_regression: s.max_regression,
            min_regression,
            query: s.query.clone(),
        });
    }

    // gates
    let modes = [("enforce", GateMode::Enforce), ("warn", GateMode::Warn)];
    let gates = Gates {
        signature: c.one_of("gates.signature", &raw.gates.signature, &modes),
        vulnerability: c.one_of("gates.vulnerability", &raw.gates.vulnerability, &modes),
        admission: c.one_of("gates.admission", &raw.gates.admission, &modes),
        admission_namespaces: c.rego_packages(
            "gates.admission_namespaces",
            &raw.gates.admission_namespaces,
        ),
        require_promotion_from: raw.gates.require_promotion_from.clone(),
    };
    if let Some(from) = &raw.gates.require_promotion_from {
        if !is_dns_label(from, 40) {
            c.add(
                "gates.require_promotion_from",
                format!("{from:?} is not a valid environment name"),
                "name the environment images must have been promoted out of",
            );
        } else if from == name {
            c.add(
                "gates.require_promotion_from",
                "an environment cannot require promotion out of itself",
                "name the environment before this one, or remove the field",
            );
        }
    }

    // promotion
    let mut windows = Vec::new();
    for (i, w) in raw.promotion.windows.iter().enumerate() {
        let f = |x: &str| format!("promotion.windows[{i}].{x}");
        let schedule = c.cron(&f("schedule"), &w.schedule, &f("timezone"), &w.timezone);
        let duration = c.duration(
            &f("duration"),
            &w.duration,
            Duration::from_secs(60),
            Duration::from_secs(31 * 86400),
        );
        let kind = c.one_of(
            &f("kind"),
            &w.kind,
            &[("allow", WindowKind::Allow), ("deny", WindowKind::Deny)],
        );
        if let Some(schedule) = schedule {
            c.fires(&f("schedule"), &schedule, None);
            windows.push(Window {
                kind,
                schedule,
                duration,
            });
        }
    }

    // drift
    let schedule = raw
        .drift
        .schedule
        .as_deref()
        .and_then(|s| c.cron("drift.schedule", s, "drift.timezone", &raw.drift.timezone));
    if let Some(s) = &schedule {
        c.fires("drift.schedule", s, Some(MIN_CHECK_GAP));
    }
    let mode = c.one_of(
        "drift.mode",
        &raw.drift.mode,
        &[("report", DriftMode::Report), ("heal", DriftMode::Heal)],
    );
    let grace = c.duration(
        "drift.grace",
        &raw.drift.grace,
        Duration::ZERO,
        Duration::from_secs(7 * 86400),
    );
    let mut ignore = Vec::new();
    for (i, ig) in raw.drift.ignore.iter().enumerate() {
        if !ig.path.starts_with('/') || ig.path.len() < 2 {
            c.add(
                &format!("drift.ignore[{i}].path"),
                format!("{:?} is not a path", ig.path),
                "write a JSON-pointer-style path such as \"/spec/replicas\" (`*` matches every list item)",
            );
        } else {
            ignore.push((ig.kind.clone(), ig.path.clone()));
        }
    }
    let window = |c: &mut Check<'_>, field: &str, v: &str| {
        c.duration(
            field,
            v,
            Duration::from_secs(1),
            Duration::from_secs(90 * 86400),
        )
    };
    let burn_windows = match &raw.drift.burn_windows {
        None => BurnWindow::workbook(),
        Some(list) => {
            let mut out = Vec::new();
            for (i, w) in list.iter().enumerate() {
                let f = |x: &str| format!("drift.burn_windows[{i}].{x}");
                let long = window(&mut c, &f("long"), &w.long);
                let short = window(&mut c, &f("short"), &w.short);
                if short > long {
                    c.add(
                        &f("short"),
                        "longer than `long`",
                        "make `short` the shorter window (the workbook uses 1/12 of `long`)",
                    );
                }
                if !(w.factor.is_finite() && w.factor > 0.0) {
                    c.add(
                        &f("factor"),
                        format!("{} is not a positive number", w.factor),
                        "use a burn-rate factor such as 14.4",
                    );
                }
                let severity = c.one_of(
                    &f("severity"),
                    &w.severity,
                    &[("page", Severity::Page), ("ticket", Severity::Ticket)],
                );
                out.push(BurnWindow {
                    long,
                    short,
                    factor: w.factor,
                    severity,
                });
            }
            out
        }
    };
    let regression_window = window(
        &mut c,
        "drift.regression_window",
        &raw.drift.regression_window,
    );
    let revert_within = match &raw.drift.revert_within {
        Some(v) => c.duration(
            "drift.revert_within",
            v,
            Duration::ZERO,
            Duration::from_secs(7 * 86400),
        ),
        None => bake,
    };

    let mut drills = Vec::new();
    for (i, d) in raw.drill.iter().enumerate() {
        let schedule = c.cron(
            &format!("drill[{i}].schedule"),
            &d.schedule,
            &format!("drill[{i}].timezone"),
            &d.timezone,
        );
        let scenario = d.scenario.parse::<crate::drill::Scenario>();
        if let Some(s) = &schedule {
            c.fires(&format!("drill[{i}].schedule"), s, Some(MIN_DRILL_GAP));
        }
        match (schedule, scenario) {
            (Some(s), Ok(sc)) => drills.push((s, sc)),
            (_, Err(_)) => c.add(
                &format!("drill[{i}].scenario"),
                format!("{:?} is not a drill", d.scenario),
                "use rollback, bad-signature, config-drift, git-outage, metrics-outage or crash-mid-rollout",
            ),
            _ => {}
        }
    }

    let env = Env {
        name: name.to_string(),
        file: file.to_string(),
        branch: raw.branch,
        overlay: raw.overlay,
        next: raw.next,
        target: Target {
            kind,
            namespace: raw.target.namespace,
            app: raw.target.app,
            context: raw.target.context,
        },
        rollout: Rollout {
            steps,
            analysis_interval,
            intervals_per_step: r.intervals_per_step,
            failure_limit: r.failure_limit,
            inconclusive_limit: r.inconclusive_limit,
            min_requests: r.min_requests,
            bake,
        },
        slos,
        gates,
        promotion: PromotionPolicy {
            requires_approval: raw.promotion.requires_approval,
            windows,
        },
        drift: Drift {
            schedule,
            mode,
            grace,
            ignore,
            burn_windows,
            regression_window,
            revert_within,
        },
        drills,
    };
    (env, c.problems)
}

/// Template variables must be known and braces balanced.
fn check_template(c: &mut Check<'_>, field: &str, query: &str) {
    if query.trim().is_empty() {
        c.add(field, "the query is empty", "write a PromQL expression");
        return;
    }
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            c.add(
                field,
                "a '{{' is never closed",
                "close every template variable with '}}'",
            );
            return;
        };
        let var = after[..end].trim();
        if !TEMPLATE_VARIABLES.contains(&var) {
            c.add(
                field,
                format!("unknown template variable {{{{{var}}}}}"),
                format!("use one of: {}", TEMPLATE_VARIABLES.join(", ")),
            );
        }
        rest = &after[end + 2..];
    }
}

/// Checks that span environments: the promotion chain and uniqueness.
pub(super) fn validate_set(envs: &[Env]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for e in envs {
        if let Some(from) = &e.gates.require_promotion_from
            && !envs.iter().any(|o| &o.name == from)
        {
            problems.push(Problem::new(
                &e.file,
                "gates.require_promotion_from",
                format!("environment {from:?} does not exist"),
                format!("add envs/{from}.toml or fix the name"),
            ));
        }
        if let Some(next) = &e.next {
            if !envs.iter().any(|o| &o.name == next) {
                problems.push(Problem::new(
                    &e.file,
                    "next",
                    format!("environment {next:?} does not exist"),
                    format!("add envs/{next}.toml or fix the name"),
                ));
            }
            let sources: Vec<&str> = envs
                .iter()
                .filter(|o| o.next.as_ref() == Some(next))
                .map(|o| o.name.as_str())
                .collect();
            if sources.len() > 1 && sources[0] == e.name {
                problems.push(Problem::new(
                    &e.file,
                    "next",
                    format!("{} all promote into {next:?}", sources.join(", ")),
                    "each environment may have only one predecessor: chain them instead",
                ));
            }
        }
        for o in envs {
            if o.name < e.name && o.branch == e.branch {
                problems.push(Problem::new(
                    &e.file,
                    "branch",
                    format!("{:?} is also the branch of {}", e.branch, o.name),
                    "give every environment its own branch",
                ));
            }
            if o.name < e.name && o.overlay.trim_end_matches('/') == e.overlay.trim_end_matches('/')
            {
                problems.push(Problem::new(
                    &e.file,
                    "overlay",
                    format!("{:?} is also the overlay of {}", e.overlay, o.name),
                    "give every environment its own overlay: promotions write digest pins into it",
                ));
            }
        }
    }
    // Cycles: follow next from each env; report each cycle once, from its smallest member.
    for e in envs {
        let mut path = vec![e.name.clone()];
        let mut cur = e.next.clone();
        while let Some(n) = cur {
            if n == e.name {
                if path.iter().min() == Some(&e.name) {
                    path.push(n);
                    problems.push(Problem::new(
                        &e.file,
                        "next",
                        format!("promotion cycle: {}", path.join(" → ")),
                        "the last environment of a chain must have no next",
                    ));
                }
                break;
            }
            if path.contains(&n) {
                break; // a cycle not through e: reported from its own member
            }
            path.push(n.clone());
            cur = envs
                .iter()
                .find(|o| o.name == n)
                .and_then(|o| o.next.clone());
        }
    }
    problems
}
