//! All three gates for one rendered release, in the order the release prints them:
//! artifact signature, vulnerability policy, admission policy. A gate that
//! cannot evaluate yields a `fail` verdict carrying the reason — never a
//! pass, never a skip — and a gate in `warn` mode reports its failures
//! without enforcing them.

use super::{admission::AdmissionGate, cosign, promotion, trust, vulnerability};
use crate::config::{GateMode, Gates};
use crate::model::{Finding, Outcome, Verdict};
use crate::ports::Registry;
use crate::render::Rendered;
use crate::source::TreeReader;
use chrono::{DateTime, Utc};

/// The three verdicts, in display order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checks {
    /// Set when a gate could not evaluate because infrastructure (the
    /// registry) was unreachable: the release pauses, it is not reverted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<String>,
    pub artifact_signature: Verdict,
    pub vulnerability_policy: Verdict,
    pub admission_policy: Verdict,
}

impl Checks {
    pub fn verdicts(&self) -> [&Verdict; 3] {
        [
            &self.artifact_signature,
            &self.vulnerability_policy,
            &self.admission_policy,
        ]
    }

    pub fn passed(&self) -> bool {
        self.verdicts().iter().all(|v| v.outcome != Outcome::Fail)
    }
}

fn could_not_evaluate(gate: &'static str, reason: String) -> Verdict {
    Verdict::from_findings(
        gate,
        vec![Finding {
            rule: "could-not-evaluate".into(),
            subject: gate.into(),
            message: reason,
            enforced: true,
            enforced_from: None,
        }],
    )
}

/// `warn` mode reports findings without enforcing them; a gate that could
/// not evaluate stays failed in either mode.
fn apply_mode(mut v: Verdict, mode: GateMode) -> Verdict {
    if mode == GateMode::Warn {
        v.findings
            .iter_mut()
            .filter(|f| f.rule != "could-not-evaluate")
            .for_each(|f| f.enforced = false);
        v = Verdict::from_findings(v.gate, v.findings);
    }
    v
}

/// `repo@sha256:…` → (repo, digest); a reference without a digest is `Err`.
fn split_pinned(image: &str) -> Result<(&str, &str), String> {
    let (name, _tag, digest) = crate::render::transform::split_image(image);
    match digest {
        Some(d) => Ok((name, d)),
        None => Err(format!(
            "{image} is not pinned by digest: immutable references only"
        )),
    }
}

/// Runs every gate over `rendered`, with policies read from `tree`.
pub fn run(
    tree: &dyn TreeReader,
    rendered: &Rendered,
    modes: &Gates,
    reg: &dyn Registry,
    now: DateTime<Utc>,
) -> Checks {
    let images = crate::render::images(rendered);
    let mut infrastructure = None;
    // Both artifact gates trust the same keys.
    let trusted = trust::load(tree).map_err(|e| e.to_string());

    let signature = signature_verdict(
        &trusted,
        &images,
        reg,
        now,
        modes.require_promotion_from.as_deref(),
        &mut infrastructure,
    );

    let policy = vulnerability::VulnPolicy::load(tree).map_err(|e| e.to_string());
    let vulnerability = match (&policy, &trusted) {
        (Err(e), _) | (_, Err(e)) => could_not_evaluate(vulnerability::GATE, e.clone()),
        (Ok(policy), Ok(trust)) => {
            let mut findings = Vec::new();
            let mut error = None;
            for image in &images {
                let Ok((repo, digest)) = split_pinned(image) else {
                    continue; // reported by the signature gate
                };
                match cosign::verified_predicate(
                    reg,
                    repo,
                    digest,
                    cosign::VULN_PREDICATE,
                    trust,
                    now,
                ) {
                    Err(e) => {
                        if e.is_infrastructure() {
                            infrastructure = Some(e.to_string());
                        }
                        error = Some(e.to_string())
                    }
                    Ok(Err(reason)) => {
                        let mut f = vulnerability::missing_report(image, true);
                        f.message = format!("{}: {reason}", f.message);
                        findings.push(f);
                    }
                    Ok(Ok(predicate)) => match vulnerability::parse_report(&predicate) {
                        Ok(report) => {
                            findings.extend(vulnerability::evaluate(policy, repo, &report, now))
                        }
                        Err(e) => findings.push(vulnerability::missing_report(
                            &format!("{image} ({e})"),
                            true,
                        )),
                    },
                }
            }
            match error {
                Some(e) => could_not_evaluate(vulnerability::GATE, e),
                None => vulnerability::verdict(findings),
            }
        }
    };

    let admission = match AdmissionGate::load(tree, &modes.admission_namespaces) {
        Err(e) => could_not_evaluate("admission_policy", e.to_string()),
        Ok(mut gate) => gate
            .evaluate(&rendered.objects, now.date_naive())
            .unwrap_or_else(|e| could_not_evaluate("admission_policy", e.to_string())),
    };

    Checks {
        infrastructure,
        artifact_signature: apply_mode(signature, modes.signature),
        vulnerability_policy: apply_mode(vulnerability, modes.vulnerability),
        admission_policy: apply_mode(admission, modes.admission),
    }
}

/// The artifact signature gate alone, over `images` (a manual rollback's
/// target must still verify), with the keys `tree` trusts and the env's
/// mode. The second value is set when the registry was unreachable.
pub fn signatures(
    tree: &dyn TreeReader,
    images: &[String],
    modes: &Gates,
    reg: &dyn Registry,
    now: DateTime<Utc>,
) -> (Verdict, Option<String>) {
    let trusted = trust::load(tree).map_err(|e| e.to_string());
    let mut infrastructure = None;
    let v = signature_verdict(
        &trusted,
        images,
        reg,
        now,
        modes.require_promotion_from.as_deref(),
        &mut infrastructure,
    );
    (apply_mode(v, modes.signature), infrastructure)
}

fn signature_verdict(
    trusted: &Result<trust::TrustPolicy, String>,
    images: &[String],
    reg: &dyn Registry,
    now: DateTime<Utc>,
    require_promotion_from: Option<&str>,
    infrastructure: &mut Option<String>,
) -> Verdict {
    match trusted {
        Err(e) => could_not_evaluate("artifact_signature", e.clone()),
        Ok(trust) if trust.is_empty() => could_not_evaluate(
            "artifact_signature",
            format!(
                "{}: no trusted keys or identities: nothing can pass (fail closed); add [[keys]] or [[keyless]]",
                trust::TRUST_FILE
            ),
        ),
        Ok(trust) => {
            let mut findings = Vec::new();
            let mut error = None;
            for image in images {
                match split_pinned(image) {
                    Err(m) => findings.push(pinning_finding(image, m)),
                    Ok((repo, digest)) => {
                        let promoted = |from: &str| {
                            promotion::find(reg, repo, digest, from, trust).map(|found| {
                                found.err().map(|reason| Finding {
                                    rule: "no-promotion-attestation".into(),
                                    subject: image.clone(),
                                    message: format!(
                                        "gates.require_promotion_from = {from:?}: {reason}"
                                    ),
                                    enforced: true,
                                    enforced_from: None,
                                })
                            })
                        };
                        let checked = cosign::check(reg, repo, digest, trust, now).and_then(|f| {
                            let p = match require_promotion_from {
                                Some(from) => promoted(from)?,
                                None => None,
                            };
                            Ok(f.into_iter().chain(p))
                        });
                        match checked {
                            Ok(found) => findings.extend(found),
                            Err(e) => {
                                if e.is_infrastructure() {
                                    *infrastructure = Some(e.to_string());
                                }
                                error = Some(e.to_string())
                            }
                        }
                    }
                }
            }
            match error {
                Some(e) => could_not_evaluate("artifact_signature", e),
                None => Verdict::from_findings("artifact_signature", findings),
            }
        }
    }
}

fn pinning_finding(image: &str, message: String) -> Finding {
    Finding {
        rule: "images-by-digest".into(),
        subject: image.into(),
        message,
        enforced: true,
        enforced_from: None,
    }
}
