//! Admission gate over real rendered objects with the blueprint's real
//! policies: each rule, severity phases before and after their date (an
//! injected date), syntax errors, the evaluation budget, no policies.

use crate::support::blueprint_dir;
use chrono::NaiveDate;
use platform_capstone::gates::GateError;
use platform_capstone::gates::admission::AdmissionGate;
use platform_capstone::model::Outcome;
use platform_capstone::render;
use platform_capstone::source::DirReader;
use std::path::Path;
use std::time::Duration;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn objects(root: &Path, overlay: &str) -> Vec<yaml_serde::Value> {
    render::render(&DirReader::open(root).expect("open"), overlay)
        .expect("render")
        .objects
}

fn gate(root: &Path) -> AdmissionGate {
    AdmissionGate::load(&DirReader::open(root).expect("open")).expect("load policies")
}

#[test]
fn the_blueprint_passes_its_own_policies() {
    let dir = blueprint_dir();
    for env in ["dev", "staging", "prod"] {
        let v = gate(dir.path())
            .evaluate(
                &objects(dir.path(), &format!("overlays/{env}")),
                date("2026-11-25"),
            )
            .expect("evaluate");
        assert_eq!(v.outcome, Outcome::Pass, "{env}: {:#?}", v.findings);
    }
}

/// Edits the base Deployment, renders dev, evaluates on `day`.
fn verdict_after(edit: &dyn Fn(&str) -> String, day: &str) -> platform_capstone::model::Verdict {
    let dir = blueprint_dir();
    let p = dir.path().join("overlays/base/deployment.yaml");
    let text = std::fs::read_to_string(&p).expect("read");
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit must change something");
    std::fs::write(&p, edited).expect("write");
    // dev pins by digest through `images:`; drop the pin so a tag survives.
    let k = dir.path().join("overlays/dev/kustomization.yaml");
    let mut kt = std::fs::read_to_string(&k).expect("read");
    let start = kt.find("\nimages:\n").expect("images") + 1;
    let end = start + kt[start..].find("replicas:").expect("replicas");
    kt.replace_range(start..end, "");
    std::fs::write(&k, kt).expect("write");
    gate(dir.path())
        .evaluate(&objects(dir.path(), "overlays/dev"), date(day))
        .expect("evaluate")
}

#[test]
fn each_rule_fails_the_object_that_breaks_it() {
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "images-by-digest",
            Box::new(|t: &str| {
                t.replace(
                    "@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    ":latest",
                )
            }),
        ),
        (
            "no-privileged",
            Box::new(|t: &str| t.replace("privileged: false", "privileged: true")),
        ),
        (
            "run-as-non-root",
            Box::new(|t: &str| t.replace("runAsNonRoot: true", "runAsNonRoot: false")),
        ),
        (
            "no-host-network",
            Box::new(|t: &str| {
                t.replace(
                    "      serviceAccountName: demo\n",
                    "      serviceAccountName: demo\n      hostNetwork: true\n",
                )
            }),
        ),
        (
            "no-host-path",
            Box::new(|t: &str| {
                t.replace("      serviceAccountName: demo\n", "      serviceAccountName: demo\n      volumes:\n        - name: h\n          hostPath:\n            path: /var/run\n")
            }),
        ),
        (
            "ownership",
            Box::new(|t: &str| t.replacen("    team: platform\n", "", 1)),
        ),
    ];
    for (rule, edit) in cases {
        let v = verdict_after(edit.as_ref(), "2026-11-25");
        assert_eq!(v.outcome, Outcome::Fail, "{rule}: {:#?}", v.findings);
        let f = v
            .findings
            .iter()
            .find(|f| f.rule == rule)
            .unwrap_or_else(|| panic!("{rule} not reported: {:#?}", v.findings));
        assert!(
            f.enforced && f.subject.starts_with("Deployment/demo"),
            "{f:?}"
        );
    }
}

#[test]
fn a_phased_rule_warns_before_its_date_and_fails_after() {
    let drop_limits = |t: &str| {
        t.replace(
            "            limits:\n              cpu: 500m\n              memory: 64Mi\n",
            "",
        )
    };
    let before = verdict_after(&drop_limits, "2026-11-30");
    assert_eq!(before.outcome, Outcome::Warn, "{:#?}", before.findings);
    let f = &before.findings[0];
    assert_eq!(f.rule, "resources");
    assert!(!f.enforced);
    assert!(
        f.enforced_from
            .as_deref()
            .is_some_and(|d| d.starts_with("2026-12-01")),
        "{f:?}"
    );
    let after = verdict_after(&drop_limits, "2026-12-01");
    assert_eq!(after.outcome, Outcome::Fail, "{:#?}", after.findings);
    assert!(after.findings[0].enforced && after.findings[0].enforced_from.is_none());
}

#[test]
fn warn_rules_warn_and_broken_policies_fail_closed() {
    let dir = blueprint_dir();
    let adm = dir.path().join("policies/admission");
    std::fs::write(adm.join("advice.rego"), "package main\nimport rego.v1\nwarn contains msg if {\n  input.kind == \"Service\"\n  msg := \"advice: services should set sessionAffinity\"\n}\n").expect("write");
    let v = gate(dir.path())
        .evaluate(&objects(dir.path(), "overlays/dev"), date("2026-11-25"))
        .expect("eval");
    assert_eq!(v.outcome, Outcome::Warn);
    assert_eq!(v.findings.len(), 1);
    assert_eq!(v.findings[0].rule, "advice");

    std::fs::write(
        adm.join("broken.rego"),
        "package main\nimport rego.v1\n\ndeny contains msg if {\n  input.kind ==\n}\n",
    )
    .expect("write");
    let err =
        AdmissionGate::load(&DirReader::open(dir.path()).expect("open")).expect_err("syntax error");
    let msg = err.to_string();
    assert!(matches!(err, GateError::Policy { .. }), "{msg}");
    assert!(
        msg.starts_with("policies/admission/broken.rego")
            && (msg.contains(":5:") || msg.contains(":6:")),
        "names file and line: {msg}"
    );

    std::fs::remove_file(adm.join("broken.rego")).expect("rm");
    std::fs::write(adm.join("slow.rego"), "package main\nimport rego.v1\ndeny contains msg if {\n  n := count([x | some x in numbers.range(1, 50000000); x % 7 == 0])\n  n < 0\n  msg := \"slow: never\"\n}\n").expect("write");
    let err = gate(dir.path())
        .with_budget(Duration::from_millis(20))
        .evaluate(&objects(dir.path(), "overlays/dev"), date("2026-11-25"))
        .expect_err("over budget");
    assert!(matches!(err, GateError::Budget { .. }), "{err}");

    for f in std::fs::read_dir(&adm).expect("ls").flatten() {
        if f.path().extension().is_some_and(|e| e == "rego") {
            std::fs::remove_file(f.path()).expect("rm");
        }
    }
    let err =
        AdmissionGate::load(&DirReader::open(dir.path()).expect("open")).expect_err("no policies");
    assert!(err.to_string().contains("no .rego policies"), "{err}");
}

/// conftest's conventions: every `deny_*`/`violation_*`/`warn_*` rule and a
/// boolean `deny` are evaluated (a `deny_everything` once gave
/// `admission_policy: pass`), and a decision rule in a package the gate
/// does not evaluate is refused instead of silently skipped.
#[test]
fn conftest_prefixed_and_boolean_rules_are_evaluated_never_skipped() {
    let dir = blueprint_dir();
    let adm = dir.path().join("policies/admission");
    std::fs::write(
        adm.join("conftest.rego"),
        "package main\nimport rego.v1\ndeny_everything contains msg if {\n  input.kind == \"Deployment\"\n  msg := \"everything: no deployments today\"\n}\nwarn_services if input.kind == \"Service\"\nis_deployment if input.kind == \"Deployment\"\n",
    )
    .expect("write");
    let v = gate(dir.path())
        .evaluate(&objects(dir.path(), "overlays/dev"), date("2026-11-25"))
        .expect("evaluate");
    assert_eq!(v.outcome, Outcome::Fail, "{:#?}", v.findings);
    assert!(
        v.findings
            .iter()
            .any(|f| f.rule == "everything" && f.enforced)
    );
    assert!(
        v.findings
            .iter()
            .any(|f| f.message == "warn_services" && !f.enforced),
        "{:#?}",
        v.findings
    );
    std::fs::write(
        adm.join("conftest.rego"),
        "package lib\nimport rego.v1\ndeny_from_lib contains \"x\" if true\n",
    )
    .expect("write");
    let err = AdmissionGate::load(&DirReader::open(dir.path()).expect("open"))
        .expect_err("not evaluated");
    let msg = err.to_string();
    assert!(
        msg.starts_with("policies/admission/conftest.rego:3") && msg.contains("deny_from_lib"),
        "{msg}"
    );
}

/// A recursive function once aborted the process (stack overflow, exit
/// 134) while `validate` passed: now the gate refuses it before evaluating
/// it, naming file, line and the cycle, and the process lives on.
#[test]
fn a_recursive_policy_fails_the_gate_and_the_process_lives() {
    let dir = blueprint_dir();
    std::fs::write(
        dir.path().join("policies/admission/loop.rego"),
        "package main\nimport rego.v1\nspin(x) := spin(x)\ndeny contains msg if {\n  spin(input)\n  msg := \"never\"\n}\n",
    )
    .expect("write");
    let err =
        AdmissionGate::load(&DirReader::open(dir.path()).expect("open")).expect_err("recursion");
    assert!(
        err.to_string().contains("policies/admission/loop.rego:3")
            && err.to_string().contains("recursion: main.spin → main.spin"),
        "{err}"
    );
    // Through the binary: validate reports it and exits 1, not 134.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .args(["validate", "--repo"])
        .arg(dir.path())
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("loop.rego:3") && out.contains("recursion"),
        "{out}"
    );
}
