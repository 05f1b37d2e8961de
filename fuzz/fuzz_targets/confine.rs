//! Path confinement, as a property: whatever path is asked for, in a tree
//! full of symlinks (up, absolute, into .git, looping), a read either fails
//! or returns a file that is inside the tree and not under `.git`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use platform_capstone::source::{MemTree, TreeReader};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let tree = MemTree::new()
        .file("a/b/file.yaml", "inside")
        .file(".git/config", "SECRET-GIT-CONFIG")
        .file("x/.git/HEAD", "SECRET-NESTED-GIT")
        .symlink("a/up", "../..")
        .symlink("a/abs", "/etc/passwd")
        .symlink("a/git", "../.git")
        .symlink("a/gitfile", "../.git/config")
        .symlink("a/loop1", "loop2")
        .symlink("a/loop2", "loop1")
        .symlink("a/ok", "b/file.yaml")
        .symlink("a/b/back", "../../a/b");
    match tree.read(path) {
        Ok(bytes) => {
            assert_eq!(bytes, b"inside", "{path:?} read something other than the one file");
        }
        Err(_) => {}
    }
    if let Ok(r) = tree.resolve(path) {
        assert!(
            !r.components.iter().any(|c| c == ".." || c == "." || c.eq_ignore_ascii_case(".git")),
            "{path:?} resolved to {:?}",
            r.components
        );
    }
});
