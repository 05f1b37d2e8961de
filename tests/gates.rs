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

fn main() -> Vec<String> {
    vec!["main".to_string()]
}

fn gate(root: &Path) -> AdmissionGate {
    AdmissionGate::load(&DirReader::open(root).expect("open"), &main()).expect("load policies")
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
    let err = AdmissionGate::load(&DirReader::open(dir.path()).expect("open"), &main())
        .expect_err("syntax error");
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
    let err = AdmissionGate::load(&DirReader::open(dir.path()).expect("open"), &main())
        .expect_err("no policies");
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
        "package main\nimport rego.v1\ndeny_everything contains msg if {\n  input.kind == \"Deployment\"\n  msg := \"everything: no deployments today\"\n}\nwarn_services if input.kind == \"Service\"\nis_deployment if input.kind == \"Deployment\"\ndeny_deployments_on_fridays contains \"fridays: never\" if { is_deployment; false }\n",
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
    let err = AdmissionGate::load(&DirReader::open(dir.path()).expect("open"), &main())
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
    let err = AdmissionGate::load(&DirReader::open(dir.path()).expect("open"), &main())
        .expect_err("recursion");
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

/// A policy set written the way conftest's documentation and the public
/// policy libraries write them: `deny_`/`warn_`/`violation` rules with
/// `{"msg": …}` results, a helper library package imported by alias, an
/// `exception` rule, a data file (YAML, in a subdirectory: `data.exclusions`),
/// `_test.rego` tests beside the policies, a metadata constant, and two
/// namespaces. Each assertion is what `conftest test --namespace …` gives.
#[test]
fn a_conftest_policy_set_is_evaluated_as_conftest_evaluates_it() {
    let dir = blueprint_dir();
    let adm = dir.path().join("policies/admission");
    for f in std::fs::read_dir(&adm).expect("ls").flatten() {
        if f.path().extension().is_some_and(|e| e == "rego") {
            std::fs::remove_file(f.path()).expect("rm");
        }
    }
    let write = |name: &str, text: &str| {
        let p = adm.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write(
        "lib/kubernetes.rego",
        r#"package lib.kubernetes

import rego.v1

default is_gatekeeper := false

is_workload if input.kind in {"Deployment", "StatefulSet", "DaemonSet"}

containers contains c if some c in input.spec.template.spec.containers

name := input.metadata.name
"#,
    );
    write(
        "main.rego",
        r#"package main

import data.lib.kubernetes as k8s
import rego.v1

policyID := "P1001"

deny_latest_tag contains {"msg": msg} if {
	some c in k8s.containers
	endswith(c.image, ":latest")
	msg := sprintf("latest-tag: %s uses %s", [k8s.name, c.image])
}

deny_everything contains msg if {
	k8s.is_workload
	msg := sprintf("everything: %s/%s is denied today", [input.kind, k8s.name])
}

warn_no_team contains msg if {
	k8s.is_workload
	not input.metadata.labels.owner
	not k8s.name in data.exclusions.unowned
	msg := sprintf("owner: %s has no owner label", [k8s.name])
}

violation contains {"msg": "service-type: NodePort is not allowed"} if input.spec.type == "NodePort"

exception contains rules if {
	input.kind == "Service"
	rules := [""]
}
"#,
    );
    write(
        "main_test.rego",
        r#"package main

import rego.v1

test_everything_denied if {
	deny_everything with input as {"kind": "Deployment", "metadata": {"name": "x"}}
}
"#,
    );
    write(
        "exclusions/unowned.yaml",
        "unowned:
  - legacy
",
    );
    write(
        "security.rego",
        r#"package k8s.security

import rego.v1

deny_privileged contains msg if {
	some c in input.spec.template.spec.containers
	c.securityContext.privileged
	msg := sprintf("privileged: %s runs privileged", [input.metadata.name])
}
"#,
    );
    let load = |namespaces: &[&str]| {
        let ns: Vec<String> = namespaces.iter().map(|s| s.to_string()).collect();
        AdmissionGate::load(&DirReader::open(dir.path()).expect("open"), &ns)
    };
    let mut objs = objects(dir.path(), "overlays/dev");
    let deployment = objs
        .iter_mut()
        .find(|o| o["kind"] == "Deployment")
        .expect("deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] =
        true.into();
    let service = objs
        .iter_mut()
        .find(|o| o["kind"] == "Service")
        .expect("service");
    service["spec"]["type"] = "NodePort".into();

    // `main` only: deny_everything fails the Deployment; the package
    // k8s.security is not a namespace the env evaluates, and its deny_
    // rule is refused at load rather than skipped.
    let err = load(&["main"]).expect_err("deny_privileged is outside main");
    assert!(
        err.to_string().contains("security.rego:5") && err.to_string().contains("deny_privileged"),
        "{err}"
    );
    let mut gate = load(&["main", "k8s.security"]).expect("loads");
    let v = gate.evaluate(&objs, date("2026-11-25")).expect("evaluate");
    assert_eq!(v.outcome, Outcome::Fail, "{:#?}", v.findings);
    let rules: Vec<(&str, &str, bool)> = v
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.subject.as_str(), f.enforced))
        .collect();
    assert!(
        rules.contains(&("everything", "Deployment/demo in demo-dev", true)),
        "{rules:?}"
    );
    assert!(
        rules.contains(&("privileged", "Deployment/demo in demo-dev", true)),
        "{rules:?}"
    );
    // The exception exempts the Service from the bare `violation` rule.
    assert!(!rules.iter().any(|r| r.0 == "service-type"), "{rules:?}");
    // The blueprint's Deployment has no `owner` label: a warning only.
    assert!(
        rules.contains(&("owner", "Deployment/demo in demo-dev", false)),
        "{rules:?}"
    );
    assert!(!rules.iter().any(|r| r.0 == "latest-tag"), "{rules:?}");

    // Data: a name listed in data.exclusions.unowned is not warned about.
    write("exclusions/unowned.yaml", "unowned:\n  - demo\n");
    let v = load(&["main", "k8s.security"])
        .expect("loads")
        .evaluate(&objs, date("2026-11-25"))
        .expect("evaluate");
    assert!(
        !v.findings.iter().any(|f| f.rule == "owner"),
        "{:#?}",
        v.findings
    );

    // An exception naming the rule without its prefix exempts it.
    write(
        "everything_exception.rego",
        "package main\nimport rego.v1\nexception contains [\"everything\"] if input.metadata.name == \"demo\"\n",
    );
    let v = load(&["main", "k8s.security"])
        .expect("loads")
        .evaluate(&objs, date("2026-11-25"))
        .expect("evaluate");
    assert!(
        !v.findings.iter().any(|f| f.rule == "everything"),
        "{:#?}",
        v.findings
    );
    assert!(
        v.findings.iter().any(|f| f.rule == "privileged"),
        "{:#?}",
        v.findings
    );
    std::fs::remove_file(adm.join("everything_exception.rego")).expect("rm");

    // What the gate cannot classify is an error naming file and rule.
    for (text, expect) in [
        (
            "package main\nimport rego.v1\ndenyAll contains \"x\" if true\n",
            "denyAll",
        ),
        (
            "package main\nimport rego.v1\nforbidden contains \"x\" if input.kind == \"Pod\"\n",
            "forbidden",
        ),
        (
            "package main\nimport rego.v1\ndeny_fn(x) := \"x\" if x\n",
            "deny_fn",
        ),
    ] {
        write("odd.rego", text);
        let err = load(&["main", "k8s.security"]).expect_err(expect);
        assert!(
            err.to_string().starts_with("policies/admission/odd.rego:3")
                && err.to_string().contains(expect),
            "{err}"
        );
    }
    // A result of the wrong shape is an evaluation error, never a pass.
    write(
        "odd.rego",
        "package main\nimport rego.v1\ndeny_numbers contains 42 if true\n",
    );
    let err = load(&["main", "k8s.security"])
        .expect("loads")
        .evaluate(&objs, date("2026-11-25"))
        .expect_err("a number is no message");
    assert!(
        err.to_string().contains("odd.rego:3")
            && err.to_string().contains("deny_numbers")
            && err.to_string().contains("a number (42)"),
        "{err}"
    );
    std::fs::remove_file(adm.join("odd.rego")).expect("rm");

    // Evaluating another namespace leaves main's rules unevaluated: refused,
    // naming the rule and the namespaces the gate does evaluate.
    let err = load(&["k8s.nothing"]).expect_err("main not evaluated");
    let msg = err.to_string();
    assert!(
        msg.contains("deny_latest_tag") && msg.contains("k8s.nothing"),
        "{msg}"
    );
    // A broken data file names the file.
    write("exclusions/unowned.yaml", "unowned: [\n");
    let err = load(&["main", "k8s.security"]).expect_err("bad yaml");
    assert!(err.to_string().contains("exclusions/unowned.yaml"), "{err}");
}
