//! Renderer failure modes (every one an error naming the file and field,
//! nothing rendered), the render cache, and `diff`'s Secret masking.

use crate::support::{Fixture, git};
use platform_capstone::render::{self, cache::RenderCache};
use platform_capstone::source::{DirReader, Git2Repo, GitRepo};
use std::path::Path;
use std::process::Command;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
}

fn render_err(root: &Path, dir: &str) -> String {
    let reader = DirReader::open(root).expect("open");
    match render::render(&reader, dir) {
        Ok(r) => panic!("expected an error, rendered {} objects", r.objects.len()),
        Err(e) => e.to_string(),
    }
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: x\n";

#[test]
fn every_unsupported_kustomization_field_is_named() {
    for field in [
        "helmCharts: []",
        "crds: []",
        "generators: []",
        "openapi: {}",
        "buildMetadata: []",
        "helmGlobals: {}",
        "validators: []",
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            &[("kustomization.yaml", &format!("resources: []\n{field}\n"))],
        );
        let err = render_err(dir.path(), "");
        let name = field.split(':').next().expect("name");
        assert!(
            err.starts_with("kustomization.yaml: ")
                && err.contains(&format!("field `{name}` is not supported")),
            "{field}: {err}"
        );
    }
    // Every unsupported field of the file at once, not only the first.
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        &[(
            "kustomization.yaml",
            "resources: []\nhelmCharts: []\nopenapi: {}\ncrds: []\n",
        )],
    );
    let err = render_err(dir.path(), "");
    assert!(
        err.contains("fields `helmCharts`, `openapi`, `crds` are not supported"),
        "{err}"
    );
    // With the reason where there is more to say, each reason once.
    assert!(
        err.contains("helmCharts: kustomize inflates charts only with --enable-helm")
            && err.contains("commit the output of `helm template`"),
        "{err}"
    );
    assert_eq!(err.matches("JSON6902").count(), 1, "{err}");

    // Every file of the tree, not only the first one met: a base, a
    // component and the overlay each with their own.
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        &[
            (
                "overlay/kustomization.yaml",
                "resources: [../base]\ncomponents: [../comp]\nbuildMetadata: [originAnnotations]\n",
            ),
            ("base/kustomization.yaml", "resources: []\nhelmCharts: []\n"),
            (
                "comp/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nopenapi: {}\n",
            ),
        ],
    );
    let err = render_err(dir.path(), "overlay");
    assert!(
        err.starts_with("3 kustomization files use fields platform-capstone's renderer does not support: overlay/kustomization.yaml: `buildMetadata`; base/kustomization.yaml: `helmCharts`; comp/kustomization.yaml: `openapi`"),
        "{err}"
    );
}

#[test]
fn sort_options_are_checked_as_kustomize_checks_them() {
    for (options, fragment) in [
        (
            "sortOptions:\n  order: random\n",
            "sortOptions.order \"random\" must be one of [fifo, legacy]",
        ),
        (
            "sortOptions:\n  order: fifo\n  legacySortOptions:\n    orderFirst: [Service]\n",
            "legacySortOptions is set but sortOptions.order is fifo",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            &[("kustomization.yaml", &format!("resources: []\n{options}"))],
        );
        let err = render_err(dir.path(), "");
        assert!(
            err.starts_with("kustomization.yaml: ") && err.contains(fragment),
            "{options}: {err}"
        );
    }
}

#[test]
fn yaml_bombs_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\na: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n",
    );
    for i in 0..9u8 {
        let (p, n) = ((b'a' + i) as char, (b'b' + i) as char);
        bomb.push_str(&format!(
            "{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        ));
    }
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    write(dir.path(), &[("bomb.yaml", &bomb), ("deep.yaml", &deep)]);
    // 200 MB, sparse: refused from its size alone, never read.
    let huge = std::fs::File::create(dir.path().join("huge.yaml")).expect("create");
    huge.set_len(200 * 1024 * 1024).expect("set_len");
    for (file, fragment) in [
        ("bomb.yaml", "alias bomb"),
        ("deep.yaml", "too deep"),
        ("huge.yaml", "over the 4194304-byte limit"),
    ] {
        write(
            dir.path(),
            &[("kustomization.yaml", &format!("resources:\n- {file}\n"))],
        );
        let err = render_err(dir.path(), "");
        assert!(
            err.starts_with(file) && err.contains(fragment),
            "{file}: {err}"
        );
    }
}

#[test]
fn a_cycle_between_bases_is_reported_with_its_path() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        &[
            ("overlay/kustomization.yaml", "resources:\n- ../a\n"),
            ("a/kustomization.yaml", "resources:\n- ../b\n"),
            ("b/kustomization.yaml", "resources:\n- ../a\n"),
        ],
    );
    let err = render_err(dir.path(), "overlay");
    assert_eq!(
        err,
        "kustomization cycle: a → b → a; remove one of these references"
    );
}

#[test]
fn paths_escaping_the_repo_are_refused_everywhere() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("repo");
    write(
        dir.path(),
        &[("outside.yaml", DEPLOY), ("secret.env", "TOKEN=stolen\n")],
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd-link")).expect("ln");
    let cases: &[(&str, &str)] = &[
        ("resources:\n- ../../outside.yaml\n", "../../outside.yaml"),
        ("resources:\n- /etc/passwd\n", "/etc/passwd"),
        (
            "configMapGenerator:\n- name: c\n  files:\n  - ../../secret.env\n",
            "../../secret.env",
        ),
        (
            "configMapGenerator:\n- name: c\n  envs:\n  - ../../secret.env\n",
            "../../secret.env",
        ),
        (
            "resources:\n- d.yaml\npatches:\n- path: ../../outside.yaml\n",
            "../../outside.yaml",
        ),
        ("resources:\n- link.yaml\n", "link.yaml"),
    ];
    for (kustomization, named) in cases {
        let _ = std::fs::remove_dir_all(&root);
        write(
            &root,
            &[
                ("o/kustomization.yaml", kustomization),
                ("o/d.yaml", DEPLOY),
            ],
        );
        std::os::unix::fs::symlink("/etc/passwd", root.join("o/link.yaml")).expect("ln");
        let err = render_err(&root, "o");
        assert!(
            err.contains(named),
            "{kustomization}: error must name {named}: {err}"
        );
        assert!(
            !err.contains("stolen") && !err.contains("root:x:0"),
            "nothing read: {err}"
        );
    }
}

#[test]
fn remote_bases_and_malformed_patches_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let cases: &[(&str, &str)] = &[
        (
            "resources:\n- https://github.com/example/base?ref=v1\n",
            "remote bases are refused",
        ),
        (
            "resources:\n- github.com/example/base\n",
            "remote bases are refused",
        ),
        (
            "resources:\n- d.yaml\npatches:\n- patch: '[{\"op\": \"remove\", \"path\": \"/spec\"}]'\n",
            "needs a target",
        ),
        (
            "resources:\n- d.yaml\npatches:\n- patch: \"apiVersion: apps/v1\\nkind: Deployment\\nmetadata:\\n  name: nope\\n\"\n",
            "no Deployment named \"nope\"",
        ),
        (
            "resources:\n- d.yaml\npatches:\n- target: {kind: Deployment}\n  patch: '[{\"op\": \"test\", \"path\": \"/kind\", \"value\": \"Pod\"}]'\n",
            "test failed",
        ),
        (
            "resources:\n- d.yaml\nreplicas:\n- name: ghost\n  count: 2\n",
            "no Deployment, StatefulSet",
        ),
        ("resources:\n- d.yaml\n- d.yaml\n", "listed twice"),
        (
            "resources:\n- d.yaml\ncomponents:\n- base\n",
            "is listed under components but is not kind: Component",
        ),
        (
            "resources:\n- d.yaml\n- component\n",
            "is a Component listed under resources; list it under components",
        ),
        (
            "resources:\n- d.yaml\nreplacements:\n- source: {kind: Service, name: ghost}\n  targets: [{select: {kind: Deployment}}]\n",
            "replacements[0]: source Service/ghost: no object matches",
        ),
        (
            "resources:\n- d.yaml\nreplacements:\n- source: {kind: Deployment, name: app, fieldPath: spec.nope}\n  targets: [{select: {kind: Deployment}}]\n",
            "has no spec.nope",
        ),
        (
            "resources:\n- d.yaml\nreplacements:\n- source: {kind: Deployment, name: app, options: {encoding: base64}}\n  targets: [{select: {kind: Deployment}}]\n",
            "options.encoding is not supported",
        ),
        (
            "resources:\n- d.yaml\nreplacements:\n- path: r.yaml\n  source: {kind: Deployment}\n",
            "give either path or source and targets",
        ),
        (
            "resources:\n- d.yaml\nconfigurations:\n- d.yaml\n",
            "nameReference and varReference are supported",
        ),
        (
            "resources:\n- d.yaml\ntransformers:\n- \"apiVersion: example.com/v1\\nkind: Exec\\n\"\n",
            "transformers[0]: Exec (example.com/v1): only built-in transformers",
        ),
        (
            "resources:\n- d.yaml\ntransformers:\n- base\n",
            "transformers[0]: \"base\" is a directory",
        ),
        (
            "resources:\n- d.yaml\nvars:\n- name: HOST\n  objref: {kind: Service, name: ghost, apiVersion: v1}\n",
            "var HOST: no Service named \"ghost\"",
        ),
        (
            "resources:\n- d.yaml\n- varbase\nvars:\n- name: HOST\n  objref: {kind: Deployment, name: app}\n",
            "var HOST is defined twice",
        ),
        (
            "resources:\n- d.yaml\nimages:\n- name: x\n  tagSuffix: -debug\n",
            "images (x): tagSuffix is not supported",
        ),
        (
            "resources:\n- d.yaml\n- base\nnamespace: one\n",
            "would rename all 2 Namespace objects to one name",
        ),
        (
            "configMapGenerator:\n- name: c\n  behavior: merge\n  literals: [A=1]\n",
            "needs an existing ConfigMap",
        ),
        (
            "configMapGenerator:\n- name: c\n  literals: [NOEQUALS]\n",
            "has no '='",
        ),
    ];
    for (kustomization, fragment) in cases {
        write(
            dir.path(),
            &[
                ("kustomization.yaml", kustomization),
                ("d.yaml", DEPLOY),
                ("base/kustomization.yaml", "resources:\n- ns.yaml\n"),
                (
                    "base/ns.yaml",
                    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
                ),
                ("component/kustomization.yaml", "kind: Component\n"),
                (
                    "varbase/kustomization.yaml",
                    "vars:\n- name: HOST\n  objref: {kind: Deployment, name: app}\n",
                ),
            ],
        );
        let err = render_err(dir.path(), "");
        assert!(
            (err.starts_with("kustomization.yaml") || err.contains("kustomization.yaml: is "))
                && err.contains(fragment),
            "{kustomization}: {err}"
        );
    }
}

#[test]
fn a_commit_touching_other_envs_does_not_re_render_this_one() {
    let f = Fixture::new();
    let work = f.path("work");
    git(&work, &["checkout", "-q", "env/dev"]);
    let mut cache = RenderCache::new(16);
    // Renders dev at the current head of env/dev through the cache.
    let render_dev = |cache: &mut RenderCache| {
        let repo = Git2Repo::open_local(&work).expect("open");
        let reader = repo.reader("env/dev").expect("reader");
        cache
            .render(reader.as_ref(), "overlays/dev")
            .expect("render")
    };
    let first = render_dev(&mut cache);

    // Another environment's overlay changes: dev's inputs do not.
    let prod = work.join("overlays/prod/kustomization.yaml");
    std::fs::write(
        &prod,
        std::fs::read_to_string(&prod).expect("read") + "# tweak\n",
    )
    .expect("write");
    git(&work, &["commit", "-qam", "tweak prod"]);
    let again = render_dev(&mut cache);
    assert_eq!((cache.hits, cache.misses), (1, 1));
    assert_eq!(again, first);

    // The shared base changes: dev re-renders, and the change shows.
    let base = work.join("overlays/base/kustomization.yaml");
    let text = std::fs::read_to_string(&base)
        .expect("read")
        .replace("LISTEN=0.0.0.0:8080", "LISTEN=0.0.0.0:9090");
    std::fs::write(&base, text).expect("write");
    git(&work, &["commit", "-qam", "base change"]);
    let changed = render_dev(&mut cache);
    assert_eq!((cache.hits, cache.misses), (1, 2));
    assert_ne!(changed, first);
    // A plain directory has no content ids: never served from the cache.
    let dir = DirReader::open(&work).expect("open");
    cache.render(&dir, "overlays/dev").expect("render");
    cache.render(&dir, "overlays/dev").expect("render");
    assert_eq!(cache.misses, 4);
}

#[test]
fn diff_masks_secret_values_but_shows_that_they_changed() {
    let f = Fixture::new();
    let work = f.path("work");
    git(&work, &["checkout", "-q", "env/dev"]);
    let k = work.join("overlays/dev/kustomization.yaml");
    let base = std::fs::read_to_string(&k).expect("read");
    std::fs::write(
        &k,
        format!("{base}secretGenerator:\n- name: db\n  literals:\n  - password=hunter2\n"),
    )
    .expect("write");
    git(&work, &["commit", "-qam", "add secret"]);
    std::fs::write(
        &k,
        format!("{base}secretGenerator:\n- name: db\n  literals:\n  - password=correct-horse\n"),
    )
    .expect("write");
    git(&work, &["commit", "-qam", "rotate secret"]);

    let diff = |from: &str, to: &str| {
        let repo_dir = work.to_str().expect("utf8");
        Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
            .args([
                "diff", "--repo", repo_dir, "--env", "dev", "--from", from, "--to", to,
            ])
            .output()
            .expect("run diff")
    };
    let out = diff("env/dev~1", "env/dev");
    assert_eq!(out.status.code(), Some(1), "a difference exits 1");
    let text = String::from_utf8_lossy(&out.stdout);
    for secret in [
        "hunter2",
        "correct-horse",
        "aHVudGVyMg",
        "Y29ycmVjdC1ob3JzZ",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(text.contains("-  password: <masked hmac:"), "{text}");
    assert!(text.contains("+  password: <masked hmac:"), "{text}");

    assert_eq!(
        diff("env/dev", "env/dev").status.code(),
        Some(0),
        "no difference exits 0"
    );
}

/// `render --overlay` on plain disk (no git work tree) reads bases in
/// parent directories as `kubectl kustomize` does, wherever it is run
/// from; a file outside every kustomization's reach is still refused, the
/// error names `--root`, and nothing is printed.
#[test]
fn render_overlay_on_plain_disk_reads_parent_bases_and_names_root_when_refused() {
    let run = |cwd: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
            .current_dir(cwd)
            .args(args)
            .output()
            .expect("run")
    };
    let bp = crate::support::blueprint_dir();
    let reader = DirReader::open(bp.path()).expect("open");
    let expected = render::render(&reader, "overlays/prod")
        .expect("render")
        .to_yaml();
    for (cwd, overlay) in [
        (bp.path().to_path_buf(), "overlays/prod".to_string()),
        (bp.path().join("overlays/prod"), ".".to_string()),
        (
            std::env::temp_dir(),
            bp.path().join("overlays/prod").display().to_string(),
        ),
    ] {
        let o = run(&cwd, &["render", "--overlay", &overlay]);
        assert!(
            o.status.success(),
            "{overlay} from {}: {}",
            cwd.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout), expected, "{overlay}");
    }

    // A patch reaching past every kustomization: refused, --root named.
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        &[
            (
                "secret.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: hunter2\n",
            ),
            (
                "app/base/kustomization.yaml",
                "resources:\n  - deploy.yaml\n",
            ),
            ("app/base/deploy.yaml", DEPLOY),
            (
                "app/prod/kustomization.yaml",
                "resources:\n  - ../base\n  - ../../secret.yaml\n",
            ),
        ],
    );
    let o = run(dir.path(), &["render", "--overlay", "app/prod"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("../../secret.yaml") && err.contains("--root"),
        "{err}"
    );
    assert!(o.stdout.is_empty() && !err.contains("hunter2"), "{err}");
    // Widened on purpose, it renders.
    let o = run(
        dir.path(),
        &["render", "--overlay", "app/prod", "--root", "."],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("kind: Secret"));
}

/// A CI checkout keeps its push token in `.git/config`: no generator,
/// resource or symlink can make `render` or `validate` read it, and the
/// token appears in no output.
#[test]
fn git_config_is_unreadable_by_every_path() {
    let bp = crate::support::blueprint_dir();
    let root = bp.path();
    git(root, &["init", "-q", "-b", "main"]);
    let token = "ghp_0123456789abcdefSECRET";
    git(
        root,
        &[
            "config",
            "http.https://example.com/.extraheader",
            &format!("AUTHORIZATION: basic {token}"),
        ],
    );
    std::os::unix::fs::symlink("../../.git/config", root.join("overlays/dev/token")).expect("ln");
    let kustomization = root.join("overlays/dev/kustomization.yaml");
    let original = std::fs::read_to_string(&kustomization).expect("read");
    for generator in [
        "files:\n      - ../../.git/config",
        "files:\n      - token",
        "files:\n      - git=.././../.git/config",
        "envs:\n      - ../../.git/config",
    ] {
        std::fs::write(
            &kustomization,
            format!("{original}\nsecretGenerator:\n  - name: leak\n    {generator}\n"),
        )
        .expect("write");
        for args in [
            vec!["render", "--overlay", "overlays/dev"],
            vec!["validate", "--repo", "."],
        ] {
            let o = Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
                .current_dir(root)
                .args(&args)
                .output()
                .expect("run");
            let (out, err) = (
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
            );
            assert!(!o.status.success(), "{args:?} {generator}: {out}");
            assert!(
                !out.contains(token) && !err.contains(token),
                "{args:?} {generator}: {out}{err}"
            );
            assert!(out.contains(".git") || err.contains(".git"), "{out}{err}");
        }
    }
}

/// Malformed Secret generators, and a Secret whose data is not a map: the
/// value appears in no output of `validate`, `render` or `diff` — errors
/// name the entry (`literals[1]`, `envs: file:line`), never its content.
#[test]
fn secret_values_never_reach_an_error_or_a_diff() {
    let f = Fixture::new();
    let work = f.path("work");
    git(&work, &["checkout", "-q", "env/dev"]);
    let k = work.join("overlays/dev/kustomization.yaml");
    let base = std::fs::read_to_string(&k).expect("read");
    let secret = "s3cr3t-Hunter2-value";
    std::fs::write(
        work.join("overlays/dev/db.env"),
        format!("USER=app\n{secret}\n"),
    )
    .expect("env file");
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
            .current_dir(&work)
            .args(args)
            .output()
            .expect("run");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), all)
    };
    for (generator, named) in [
        (
            format!("literals:\n  - user=app\n  - {secret}\n"),
            "literals[1]",
        ),
        (format!("literals:\n  - {secret} x=1\n"), "literals[0]"),
        ("envs:\n  - db.env\n".to_string(), "db.env:2"),
    ] {
        std::fs::write(
            &k,
            format!(
                "{base}secretGenerator:\n- name: db\n  {}",
                generator.replace('\n', "\n  ")
            ),
        )
        .expect("write");
        for args in [
            vec!["validate", "--repo", "."],
            vec!["render", "--overlay", "overlays/dev"],
        ] {
            let (ok, all) = run(&args);
            assert!(!ok, "{args:?}: {all}");
            assert!(
                !all.contains(secret) && !all.contains("Hunter2"),
                "{args:?} leaked:\n{all}"
            );
            assert!(all.contains(named), "{args:?} names {named}:\n{all}");
        }
    }
    // data / stringData that are not maps: masked whole in a diff.
    std::fs::write(&k, &base).expect("restore");
    std::fs::write(
        work.join("overlays/dev/odd.yaml"),
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: odd\nstringData: {secret}\n"),
    )
    .expect("write");
    std::fs::write(
        &k,
        base.replace("resources:\n", "resources:\n  - odd.yaml\n"),
    )
    .expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "odd secret"]);
    let (_, all) = run(&[
        "diff",
        "--repo",
        ".",
        "--env",
        "dev",
        "--from",
        "env/dev~1",
        "--to",
        "env/dev",
    ]);
    assert!(!all.contains(secret), "diff leaked:\n{all}");
    assert!(all.contains("stringData: <masked hmac:"), "{all}");
}
