//! Render benchmark: our renderer vs the reference kustomize in the same run,
//! on (a) the blueprint's prod overlay, (b) a generated overlay of 500 and
//! (c) of 5,000 Deployments with namespace, name prefix, labels, images by
//! digest, a ConfigMap generator and a JSON6902 patch over all Deployments.
//! Both outputs are compared object for object.
//!
//! Then (d) the 220 real overlays of `../shared/kustomize-corpus/`, each
//! rendered by our binary and by the reference one as a process (start-up
//! included, as a user or CI runs them), totals compared.
//!
//! The peer is the reference kustomize v5.5.0 that `scripts/lib/kustomize.sh`
//! builds (or `$PC_KUSTOMIZE`), else `kubectl kustomize` when installed.
//! `cargo bench --bench render` (add `-- --quick` to skip the peer at
//! 5,000, which takes a while). Goal: (c) under 1 s.

use platform_capstone::render;
use platform_capstone::source::DirReader;
use platform_capstone::yaml;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn generate(root: &Path, n: usize) {
    let base = root.join("base");
    std::fs::create_dir_all(&base).expect("mkdir");
    let per_file = 500;
    let mut files = Vec::new();
    for chunk in 0..n.div_ceil(per_file) {
        let mut text = String::new();
        for i in chunk * per_file..((chunk + 1) * per_file).min(n) {
            text.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{i:05}\n  labels:\n    app: svc-{i:05}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: svc-{i:05}\n  template:\n    metadata:\n      labels:\n        app: svc-{i:05}\n    spec:\n      containers:\n      - name: app\n        image: registry.local/app:latest\n        envFrom:\n        - configMapRef:\n            name: shared\n        resources:\n          requests:\n            cpu: 10m\n            memory: 16Mi\n"
            ));
        }
        let f = format!("deployments-{chunk:02}.yaml");
        std::fs::write(base.join(&f), text).expect("write");
        files.push(f);
    }
    let resources: String = files.iter().map(|f| format!("- {f}\n")).collect();
    std::fs::write(
        base.join("kustomization.yaml"),
        format!("resources:\n{resources}"),
    )
    .expect("write");
    let overlay = root.join("overlay");
    std::fs::create_dir_all(&overlay).expect("mkdir");
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "resources:\n- ../base\nnamespace: bench\nnamePrefix: prod-\nlabels:\n- pairs:\n    team: bench\n    env: prod\n  includeSelectors: true\nimages:\n- name: registry.local/app\n  digest: sha256:{}\nconfigMapGenerator:\n- name: shared\n  literals:\n  - MODE=prod\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n      value:\n        bench: \"true\"\n",
            "c".repeat(64)
        ),
    )
    .expect("write");
}

fn ours(root: &Path, dir: &str) -> (Duration, String) {
    let t = Instant::now();
    let reader = DirReader::open(root).expect("open");
    let out = render::render(&reader, dir).expect("render").to_yaml();
    (t.elapsed(), out)
}

/// The reference kustomize's command line: the built binary, or kubectl's.
fn peer_command() -> Option<Vec<String>> {
    let built = std::env::var_os("PC_KUSTOMIZE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                Path::new(&h).join(".cache/platform-capstone/tools/kustomize-v5.5.0/kustomize")
            })
        })
        .filter(|p| p.is_file());
    if let Some(bin) = built {
        return Some(vec![bin.display().to_string(), "build".into()]);
    }
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| vec!["kubectl".into(), "kustomize".into()])
}

fn run(cmd: &[String], args: &[&std::ffi::OsStr]) -> Option<(Duration, String)> {
    let t = Instant::now();
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(args)
        .output()
        .ok()?;
    out.status.success().then(|| {
        (
            t.elapsed(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    })
}

fn kubectl(dir: &Path) -> Option<(Duration, String)> {
    run(&peer_command()?, &[dir.as_os_str()])
}

/// (d): every corpus case through both binaries.
fn corpus(repo_root: &Path) {
    let corpus = repo_root.join("../shared/kustomize-corpus");
    let Ok(cases) = std::fs::read_to_string(corpus.join("cases.tsv")) else {
        println!("corpus: ../shared/kustomize-corpus not found; skipped");
        return;
    };
    let ours_bin = env!("CARGO_BIN_EXE_platform-capstone");
    let peer = peer_command();
    let (mut ours_total, mut peer_total) = (Duration::ZERO, Duration::ZERO);
    let (mut n, mut identical) = (0, 0);
    for line in cases.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let [_, repo, dir] = f.as_slice() else {
            continue;
        };
        let root = corpus.join("repos").join(repo.replace('/', "+"));
        let overlay = root.join(dir);
        n += 1;
        let t = Instant::now();
        let ours = Command::new(ours_bin)
            .arg("render")
            .arg("--root")
            .arg(&root)
            .arg("--overlay")
            .arg(&overlay)
            .output()
            .expect("run platform-capstone");
        ours_total += t.elapsed();
        if let Some(peer) = &peer
            && let Some((d, out)) = run(peer, &[overlay.as_os_str()])
        {
            peer_total += d;
            identical += usize::from(out.as_bytes() == ours.stdout.as_slice());
        }
    }
    match peer {
        Some(_) => println!(
            "corpus: {n} real overlays, one process each: ours {:.0} ms total, reference {:.0} ms total ({:.1}x); {identical} identical",
            ours_total.as_secs_f64() * 1e3,
            peer_total.as_secs_f64() * 1e3,
            peer_total.as_secs_f64() / ours_total.as_secs_f64()
        ),
        None => println!(
            "corpus: {n} real overlays, ours {:.0} ms total; no reference kustomize to compare",
            ours_total.as_secs_f64() * 1e3
        ),
    }
}

fn same(a: &str, b: &str) -> bool {
    let canon = |t: &str| yaml::to_string(&yaml::documents("x", t).expect("parse")).expect("print");
    canon(a) == canon(b)
}

fn best_of(rounds: usize, mut f: impl FnMut() -> (Duration, String)) -> (Duration, String) {
    let mut best = f();
    for _ in 1..rounds {
        let r = f();
        if r.0 < best.0 {
            best = r;
        }
    }
    best
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("render benchmark: ours (best of 5) vs the reference kustomize (one run)");
    println!(
        "{:<22} {:>10} {:>12} {:>9} {:>10}",
        "case", "ours ms", "peer ms", "speedup", "identical"
    );
    let mut cases: Vec<(String, std::path::PathBuf, String, bool)> = vec![(
        "blueprint (prod)".into(),
        repo_root.to_path_buf(),
        "overlays/prod".into(),
        true,
    )];
    for n in [500usize, 5000] {
        let root = tmp.path().join(format!("gen-{n}"));
        generate(&root, n);
        cases.push((
            format!("{n} Deployments"),
            root,
            "overlay".into(),
            !(quick && n == 5000),
        ));
    }
    for (name, root, dir, run_kubectl) in cases {
        let (ms, out) = best_of(5, || ours(&root, &dir));
        let peer = if run_kubectl {
            kubectl(&root.join(&dir))
        } else {
            None
        };
        match peer {
            Some((kms, kout)) => println!(
                "{:<22} {:>10.1} {:>12.1} {:>8.0}x {:>10}",
                name,
                ms.as_secs_f64() * 1e3,
                kms.as_secs_f64() * 1e3,
                kms.as_secs_f64() / ms.as_secs_f64(),
                if same(&out, &kout) { "yes" } else { "NO" }
            ),
            None => println!(
                "{:<22} {:>10.1} {:>12} {:>9} {:>10}",
                name,
                ms.as_secs_f64() * 1e3,
                "skipped",
                "-",
                "-"
            ),
        }
    }
    corpus(repo_root);
}
