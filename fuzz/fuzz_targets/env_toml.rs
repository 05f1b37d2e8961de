//! Env file validation: any `envs/dev.toml` gives an env or problems
//! (each naming file and field), never a panic; huge or hostile input is
//! bounded by the limits (SLO count, durations, schedules).
#![no_main]
use libfuzzer_sys::fuzz_target;
use platform_capstone::source::MemTree;

fuzz_target!(|data: &[u8]| {
    let tree = MemTree::new()
        .file("envs/dev.toml", data.to_vec())
        .file("overlays/dev/kustomization.yaml", "resources: []\n")
        .file("policies/approvers", "")
        .file("policies/allowed_signers", "");
    match platform_capstone::config::load_own_env(&tree, "dev") {
        Ok(env) => assert_eq!(env.branch, "env/dev"),
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert!(!p.file.is_empty(), "{p:?}");
            }
        }
    }
});
