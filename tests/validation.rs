//! `envs/<env>.toml` validation, table-driven: each case edits the
//! blueprint and names the file, field and message fragment it must produce.

use crate::support::blueprint_dir;
use platform_capstone::config::{self, Problem};
use platform_capstone::source::DirReader;
use std::path::Path;

fn problems(dir: &Path) -> Vec<Problem> {
    config::load_repo(&DirReader::open(dir).expect("open")).problems
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).expect("read");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(p, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn the_blueprint_is_valid() {
    let dir = blueprint_dir();
    let cfg = config::load_repo(&DirReader::open(dir.path()).expect("open"));
    assert!(cfg.problems.is_empty(), "{:#?}", cfg.problems);
    assert_eq!(cfg.chains(), vec![vec!["dev", "staging", "prod"]]);
    let prod = cfg.env("prod").expect("prod");
    assert!(prod.promotion.requires_approval);
    assert_eq!(prod.rollout.steps, vec![10, 25, 50, 100]);
}

#[test]
fn each_field_problem_names_file_field_and_fix() {
    // (file, from, to, expected field, message fragment)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "envs/dev.toml",
            "branch = \"env/dev\"",
            "branch = \"dev\"",
            "branch",
            "defined only by its own branch \"env/dev\"",
        ),
        (
            "envs/dev.toml",
            "branch = \"env/dev\"",
            "branch = \"env/prod\"",
            "branch",
            "defined only by its own branch \"env/dev\"",
        ),
        (
            "envs/dev.toml",
            "overlay = \"overlays/dev\"",
            "overlay = \"overlays/nope\"",
            "overlay",
            "does not exist",
        ),
        (
            "envs/dev.toml",
            "overlay = \"overlays/dev\"",
            "overlay = \"../outside\"",
            "overlay",
            "leaves the repository",
        ),
        (
            "envs/dev.toml",
            "overlay = \"overlays/dev\"",
            "overlay = \"/etc\"",
            "overlay",
            "absolute paths",
        ),
        (
            "envs/dev.toml",
            "overlay = \"overlays/dev\"",
            "overlay = \"envs\"",
            "overlay",
            "no kustomization.yaml",
        ),
        (
            "envs/dev.toml",
            "next = \"staging\"",
            "next = \"stagign\"",
            "next",
            "does not exist",
        ),
        (
            "envs/dev.toml",
            "next = \"staging\"",
            "next = \"dev\"",
            "next",
            "into itself",
        ),
        (
            "envs/dev.toml",
            "kind = \"podman\"",
            "kind = \"docker\"",
            "target.kind",
            "not a valid value",
        ),
        (
            "envs/dev.toml",
            "namespace = \"demo-dev\"",
            "namespace = \"Demo_Dev\"",
            "target.namespace",
            "not a valid namespace",
        ),
        (
            "envs/dev.toml",
            "steps = [10, 50, 100]",
            "steps = [10, 50]",
            "rollout.steps",
            "last step is not 100",
        ),
        (
            "envs/dev.toml",
            "steps = [10, 50, 100]",
            "steps = [50, 10, 100]",
            "rollout.steps[1]",
            "does not rise",
        ),
        (
            "envs/dev.toml",
            "steps = [10, 50, 100]",
            "steps = [0, 100]",
            "rollout.steps[0]",
            "not a percentage",
        ),
        (
            "envs/dev.toml",
            "steps = [10, 50, 100]",
            "steps = []",
            "rollout.steps",
            "no steps",
        ),
        (
            "envs/dev.toml",
            "analysis_interval = \"10s\"",
            "analysis_interval = \"ten seconds\"",
            "rollout.analysis_interval",
            "not a duration",
        ),
        (
            "envs/dev.toml",
            "analysis_interval = \"10s\"",
            "analysis_interval = \"2h\"",
            "rollout.analysis_interval",
            "out of range",
        ),
        (
            "envs/dev.toml",
            "min_requests = 20",
            "min_requests = 0",
            "rollout.min_requests",
            "no traffic",
        ),
        (
            "envs/dev.toml",
            "failure_limit = 0",
            "failure_limit = 3",
            "rollout.failure_limit",
            "as many failures",
        ),
        (
            "envs/dev.toml",
            "objective = 0.995",
            "objective = 99.5",
            "slo[0].objective",
            "not a fraction",
        ),
        (
            "envs/dev.toml",
            "kind = \"error_ratio\"",
            "kind = \"ratio\"",
            "slo[0].kind",
            "not a valid value",
        ),
        (
            "envs/dev.toml",
            "threshold = \"250ms\"",
            "threshold = \"-1\"",
            "slo[1].threshold",
            "not a duration",
        ),
        (
            "envs/dev.toml",
            "max_regression = 0.01",
            "max_regression = 2.0",
            "slo[0].max_regression",
            "out of range",
        ),
        (
            "envs/dev.toml",
            "max_regression = 0.01",
            "max_regression = 0.01\nmin_regression = \"10ms\"",
            "slo[0].min_regression",
            "only to latency SLOs",
        ),
        (
            "envs/dev.toml",
            "max_regression = 0.25",
            "max_regression = 0.25\nmin_regression = \"2m\"",
            "slo[1].min_regression",
            "",
        ),
        (
            "envs/dev.toml",
            "{{interval}}",
            "{{intreval}}",
            "slo[0].query",
            "unknown template variable {{intreval}}",
        ),
        (
            "envs/dev.toml",
            "name = \"latency-p99\"",
            "name = \"availability\"",
            "slo[1].name",
            "defined twice",
        ),
        (
            "envs/dev.toml",
            "signature = \"enforce\"",
            "signature = \"off\"",
            "gates.signature",
            "not a valid value",
        ),
        (
            "envs/dev.toml",
            "schedule = \"*/15 * * * *\"",
            "schedule = \"every 15 minutes\"",
            "drift.schedule",
            "not a cron expression",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"fix\"",
            "drift.mode",
            "not a valid value",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"report\"\n\n[[drill]]\nschedule = \"*/5 * * * *\"\nscenario = \"rollback\"",
            "drill[0].schedule",
            "fires every 300s",
        ),
        (
            "envs/prod.toml",
            "duration = \"7h\"",
            "duration = \"7h\" }, { schedule = \"0 0 30 2 *\", duration = \"1h\"",
            "promotion.windows[1].schedule",
            "never fires again",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"report\"\nignore = [{ kind = \"Deployment\", path = \"spec/replicas\" }]",
            "drift.ignore[0].path",
            "not a path",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"report\"\nburn_windows = [{ long = \"5m\", short = \"1h\", factor = 14.4, severity = \"page\" }]",
            "drift.burn_windows[0].short",
            "longer than `long`",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"report\"\nburn_windows = [{ long = \"1h\", short = \"5m\", factor = -1.0, severity = \"page\" }]",
            "drift.burn_windows[0].factor",
            "not a positive number",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"report\"\nburn_windows = [{ long = \"1h\", short = \"5m\", factor = 14.4, severity = \"sms\" }]",
            "drift.burn_windows[0].severity",
            "not a valid value",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"report\"\n\n[[drill]]\nschedule = \"0 10 * * Wed\"\nscenario = \"chaos-monkey\"",
            "drill[0].scenario",
            "not a drill",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"report\"\n\n[[drill]]\nschedule = \"wednesdays\"\nscenario = \"rollback\"",
            "drill[0].schedule",
            "not a cron expression",
        ),
        (
            "envs/prod.toml",
            "schedule = \"0 9 * * Mon-Thu\"",
            "schedule = \"0 25 * * Mon-Thu\"",
            "promotion.windows[0].schedule",
            "not a cron expression",
        ),
        (
            "envs/prod.toml",
            "schedule = \"0 9 * * Mon-Thu\"",
            "schedule = \"0 0 9 * * 2-5\"",
            "promotion.windows[0].schedule",
            "Quartz syntax",
        ),
        (
            "envs/prod.toml",
            "schedule = \"0 9 * * Mon-Thu\"",
            "schedule = \"0 9 1-7 * Mon\"",
            "promotion.windows[0].schedule",
            "fires on a day matching either",
        ),
        (
            "envs/prod.toml",
            "timezone = \"UTC\"",
            "timezone = \"Europe/Berln\"",
            "promotion.windows[0].timezone",
            "not an IANA time zone",
        ),
        (
            "envs/prod.toml",
            "kind = \"deny\"",
            "kind = \"freeze\"",
            "promotion.windows[1].kind",
            "not a valid value",
        ),
        (
            "envs/dev.toml",
            "mode = \"report\"",
            "mode = \"report\"\ntimezone = \"berlin\"",
            "drift.timezone",
            "not an IANA time zone",
        ),
        (
            "envs/prod.toml",
            "duration = \"7h\"",
            "duration = \"0s\"",
            "promotion.windows[0].duration",
            "out of range",
        ),
        (
            "envs/staging.toml",
            "branch = \"env/staging\"",
            "branch = \"env/dev\"",
            "branch",
            "defined only by its own branch \"env/staging\"",
        ),
        (
            "envs/staging.toml",
            "overlay = \"overlays/staging\"",
            "overlay = \"overlays/dev\"",
            "overlay",
            "also the overlay of dev",
        ),
        (
            "envs/staging.toml",
            "next = \"prod\"",
            "next = \"staging2\"",
            "next",
            "does not exist",
        ),
        (
            "envs/dev.toml",
            "[gates]",
            "[gates]\nsignatures = \"enforce\"",
            "line 39",
            "unknown field `signatures`",
        ),
        (
            "envs/dev.toml",
            "app = \"demo\"",
            "app = \"demo\"\napp = \"again\"",
            "line 13",
            "duplicate key",
        ),
        (
            "envs/dev.toml",
            "admission = \"enforce\"",
            "admission = \"enforce\"\nadmission_namespaces = [\"main\", \"data.k8s\"]",
            "gates.admission_namespaces[1]",
            "starts with data.",
        ),
        (
            "envs/dev.toml",
            "admission = \"enforce\"",
            "admission = \"enforce\"\nadmission_namespaces = [\"k8s-security\"]",
            "gates.admission_namespaces[0]",
            "is not a Rego package path",
        ),
        (
            "envs/dev.toml",
            "admission = \"enforce\"",
            "admission = \"enforce\"\nadmission_namespaces = []",
            "gates.admission_namespaces",
            "would evaluate nothing",
        ),
        (
            "envs/staging.toml",
            "admission = \"enforce\"",
            "admission = \"enforce\"\nrequire_promotion_from = \"Dev!\"",
            "gates.require_promotion_from",
            "is not a valid environment name",
        ),
        (
            "envs/staging.toml",
            "admission = \"enforce\"",
            "admission = \"enforce\"\nrequire_promotion_from = \"staging\"",
            "gates.require_promotion_from",
            "out of itself",
        ),
        (
            "envs/staging.toml",
            "admission = \"enforce\"",
            "admission = \"enforce\"\nrequire_promotion_from = \"qa\"",
            "gates.require_promotion_from",
            "does not exist",
        ),
        (
            "policies/approvers",
            "#   <principal>",
            "bob@example.com ssh-ed25519 not-base64\n#",
            "line 3",
            "invalid ssh-ed25519 key",
        ),
    ];
    for (file, from, to, field, fragment) in cases {
        let dir = blueprint_dir();
        edit(dir.path(), file, from, to);
        let found = problems(dir.path());
        let hit = found
            .iter()
            .find(|p| p.file == *file && p.field == *field && p.message.contains(fragment));
        assert!(
            hit.is_some(),
            "editing {file} ({from:?} → {to:?}) should report {field}: {fragment}; got {found:#?}"
        );
        let p = hit.expect("checked");
        assert!(!p.fix.is_empty(), "{p} has no fix");
    }
}

#[test]
fn a_promotion_cycle_is_reported_once_with_its_path() {
    let dir = blueprint_dir();
    edit(
        dir.path(),
        "envs/prod.toml",
        "# Last environment: nothing is promoted out of prod.",
        "next = \"dev\"",
    );
    let found = problems(dir.path());
    let cycles: Vec<String> = found
        .iter()
        .filter(|p| p.message.contains("cycle"))
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        cycles,
        vec![
            "envs/dev.toml: next: promotion cycle: dev → staging → prod → dev; the last environment of a chain must have no next"
        ]
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let dir = blueprint_dir();
    edit(
        dir.path(),
        "envs/dev.toml",
        "steps = [10, 50, 100]",
        "steps = [10, 50]",
    );
    edit(
        dir.path(),
        "envs/dev.toml",
        "objective = 0.995",
        "objective = 2",
    );
    edit(
        dir.path(),
        "envs/staging.toml",
        "mode = \"report\"",
        "mode = \"x\"",
    );
    std::fs::write(dir.path().join("envs/qa.yaml"), "x").expect("write");
    let found = problems(dir.path());
    let fields: Vec<(&str, &str)> = found
        .iter()
        .map(|p| (p.file.as_str(), p.field.as_str()))
        .collect();
    for want in [
        ("envs/dev.toml", "rollout.steps"),
        ("envs/dev.toml", "slo[0].objective"),
        ("envs/staging.toml", "drift.mode"),
        ("envs/qa.yaml", ""),
    ] {
        assert!(fields.contains(&want), "{want:?} missing from {fields:?}");
    }
}

#[test]
fn hostile_toml_is_refused_quickly_with_a_clear_error() {
    let big_string = format!("branch = \"{}\"\n", "x".repeat(5 * 1024 * 1024));
    let deep_nesting = format!("x = {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let deep_tables = format!("x = {}1{}\n", "{a = ".repeat(10_000), "}".repeat(10_000));
    let cases: &[(&str, &str, &str)] = &[
        ("huge file", &big_string, "over the 4194304-byte limit"),
        ("deep arrays", &deep_nesting, ""),
        ("deep inline tables", &deep_tables, ""),
        (
            "duplicate table",
            "[target]\nkind = \"podman\"\n[target]\nkind = \"podman\"\n",
            "",
        ),
        ("not toml", "{{{{", ""),
    ];
    for (name, text, fragment) in cases {
        let dir = blueprint_dir();
        std::fs::write(dir.path().join("envs/dev.toml"), text).expect("write");
        let found = problems(dir.path());
        let p = found
            .iter()
            .find(|p| p.file.starts_with("envs/dev.toml"))
            .unwrap_or_else(|| panic!("{name}: no problem for envs/dev.toml: {found:#?}"));
        assert!(p.to_string().contains(fragment), "{name}: {p}");
        assert!(
            p.to_string().len() < 1000,
            "{name}: error must stay one short line"
        );
    }
}

#[test]
fn a_quartz_window_is_refused_by_validate_with_the_crontab_form_on_one_line() {
    let dir = blueprint_dir();
    edit(
        dir.path(),
        "envs/prod.toml",
        "schedule = \"0 9 * * Mon-Thu\"",
        "schedule = \"0 0 9 * * 1-5\"",
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .args(["validate", "--repo"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.contains("promotion.windows[0].schedule"))
        .unwrap_or_else(|| panic!("no line for the window in\n{out}"));
    assert_eq!(
        line,
        "envs/prod.toml: promotion.windows[0].schedule: \"0 0 9 * * 1-5\" has 6 fields: that is Quartz syntax (seconds first, day-of-week 1 = Sunday), not crontab; write \"0 9 * * 0-4\" (crontab numbers days 0-6 from Sunday)"
    );
}
