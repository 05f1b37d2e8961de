//! Kustomization parsing and rendering: a fuzzed kustomization.yaml and a
//! fuzzed resource in a small tree with a base; render returns objects or
//! an error, never panics. Input: kustomization, then resource, split at
//! the first NUL.
#![no_main]
use libfuzzer_sys::fuzz_target;
use platform_capstone::source::MemTree;

const BASE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  labels:\n    app: demo\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: demo\n  template:\n    metadata:\n      labels:\n        app: demo\n    spec:\n      containers:\n      - name: app\n        image: registry.example/app:1\n        env:\n        - name: A\n          valueFrom:\n            configMapKeyRef:\n              name: cfg\n              key: a\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (kustomization, resource) = text.split_once('\0').unwrap_or((text, ""));
    let tree = MemTree::new()
        .file("base/kustomization.yaml", "resources:\n  - deploy.yaml\nconfigMapGenerator:\n  - name: cfg\n    literals:\n      - a=1\n")
        .file("base/deploy.yaml", BASE)
        .file("overlay/kustomization.yaml", kustomization)
        .file("overlay/extra.yaml", resource)
        .file("overlay/patch.yaml", resource)
        .file("overlay/app.env", "A=1\nB=2\n")
        .symlink("overlay/link.yaml", "extra.yaml");
    if let Ok(r) = platform_capstone::render::render(&tree, "overlay") {
        let _ = r.to_yaml();
        let _ = platform_capstone::render::images(&r);
    }
});
