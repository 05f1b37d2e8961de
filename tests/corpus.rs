//! The shared corpus of real overlays (`../shared/kustomize-corpus/`: 220
//! kustomization directories from 12 public repositories, each with the
//! reference kustomize v5.5.0 output): every case is rendered in-process
//! and must be byte-identical, except the cases listed in [`NOT_YET`],
//! which must still differ — so a fix shows up as a list to shorten, and a
//! regression anywhere fails.

use platform_capstone::render;
use platform_capstone::source::DirReader;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Cases we do not render identically yet, with what is missing. Keep in
/// step with `docs/kustomize.md`.
const NOT_YET: &[(&str, &str)] = &[];

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/kustomize-corpus");
    assert!(
        dir.join("cases.tsv").is_file(),
        "the shared kustomize corpus is not at {}: CI checks the repository out beside ../shared",
        dir.display()
    );
    dir
}

struct Case {
    id: String,
    repo: String,
    dir: String,
}

fn cases(corpus: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(corpus.join("cases.tsv")).expect("cases.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let mut next = || f.next().unwrap_or_default().to_string();
            Case {
                id: next(),
                repo: next(),
                dir: next(),
            }
        })
        .collect()
}

fn expected(corpus: &Path, id: &str) -> String {
    let file = corpus.join(format!("expected/{id}.yaml.gz"));
    let out = std::process::Command::new("gunzip")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("gunzip {}: {e}", file.display()));
    assert!(out.status.success(), "gunzip {} failed", file.display());
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn render_case(corpus: &Path, case: &Case) -> Result<String, String> {
    let root = corpus.join("repos").join(case.repo.replace('/', "+"));
    let reader = DirReader::open(&root).map_err(|e| e.to_string())?;
    render::render(&reader, &case.dir)
        .map(|r| r.to_yaml())
        .map_err(|e| e.to_string())
}

#[test]
fn every_corpus_overlay_renders_byte_identical_to_the_reference_kustomize() {
    let corpus = corpus();
    let cases = cases(&corpus);
    assert_eq!(cases.len(), 220, "the corpus has 220 cases");
    let not_yet: BTreeMap<&str, &str> = NOT_YET.iter().copied().collect();
    let mut wrong = Vec::new();
    let mut fixed = Vec::new();
    let mut identical = 0;
    let mut spent = Duration::ZERO;
    for case in &cases {
        let want = expected(&corpus, &case.id);
        let started = Instant::now();
        let got = render_case(&corpus, case);
        spent += started.elapsed();
        let same = got.as_deref() == Ok(want.as_str());
        identical += usize::from(same);
        match (same, not_yet.contains_key(case.id.as_str())) {
            (true, true) => fixed.push(case.id.clone()),
            (false, false) => wrong.push(match got {
                Err(e) => format!("{} {}:{}: error: {e}", case.id, case.repo, case.dir),
                Ok(got) => {
                    let diff = similar::TextDiff::from_lines(&want, &got)
                        .unified_diff()
                        .context_radius(2)
                        .header("kustomize", "platform-capstone")
                        .to_string();
                    let head: String = diff.lines().take(40).collect::<Vec<_>>().join("\n");
                    format!("{} {}:{}: differs:\n{head}", case.id, case.repo, case.dir)
                }
            }),
            _ => {}
        }
    }
    println!(
        "corpus: {} cases, {identical} identical, {} listed as not yet; rendered in {} ms",
        cases.len(),
        NOT_YET.len(),
        spent.as_millis()
    );
    assert!(
        fixed.is_empty(),
        "now identical, remove from NOT_YET (and docs/kustomize.md): {fixed:?}"
    );
    assert!(
        wrong.is_empty(),
        "{} corpus cases are not identical:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
