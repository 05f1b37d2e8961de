//! Reads never leave the repo: `..`, absolute paths, symlinks out of the
//! tree or in a loop, anything under `.git` (directly or through a
//! symlink), and oversized files are refused with an error naming the
//! path — both for a commit's tree and for a directory on disk.

use crate::support::git;
use platform_capstone::source::{DirReader, Git2Repo, GitRepo, ReadError, TreeReader};
use std::os::unix::fs::symlink;
use std::path::Path;

/// A working tree with a hostile mix of entries, committed on env/dev.
fn hostile_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "env/dev"]);
    std::fs::create_dir_all(dir.join("overlays/dev")).expect("mkdir");
    std::fs::create_dir_all(dir.join("overlays/base")).expect("mkdir");
    std::fs::write(
        dir.join("overlays/base/deployment.yaml"),
        "kind: Deployment\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("overlays/dev/big.yaml"),
        vec![b'#'; 5 * 1024 * 1024],
    )
    .expect("w");
    symlink("/etc/passwd", dir.join("overlays/dev/passwd")).expect("ln");
    symlink("../../../outside", dir.join("overlays/dev/up")).expect("ln");
    symlink("loop-b", dir.join("overlays/dev/loop-a")).expect("ln");
    symlink("loop-a", dir.join("overlays/dev/loop-b")).expect("ln");
    symlink(
        "../base/deployment.yaml",
        dir.join("overlays/dev/shared.yaml"),
    )
    .expect("ln");
    symlink("../../.git/config", dir.join("overlays/dev/gitconfig")).expect("ln");
    symlink("../../.git", dir.join("overlays/dev/gitdir")).expect("ln");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "hostile"]);
}

fn check(reader: &dyn TreeReader) {
    // Allowed: `..` and a symlink that stay inside the tree.
    assert_eq!(
        reader
            .read_string("overlays/dev/../base/deployment.yaml")
            .expect("inside"),
        "kind: Deployment\n"
    );
    assert_eq!(
        reader
            .read_string("overlays/dev/shared.yaml")
            .expect("inside link"),
        "kind: Deployment\n"
    );
    type Expect = fn(&ReadError) -> bool;
    let cases: [(&str, Expect); 11] = [
        (".git/config", |e| matches!(e, ReadError::GitDir { .. })),
        ("overlays/../.GIT/config", |e| {
            matches!(e, ReadError::GitDir { .. })
        }),
        ("overlays/dev/gitconfig", |e| {
            matches!(e, ReadError::GitDir { .. })
        }),
        ("overlays/dev/gitdir/config", |e| {
            matches!(e, ReadError::GitDir { .. })
        }),
        ("overlays/dev/gitdir/HEAD", |e| {
            matches!(e, ReadError::GitDir { .. })
        }),
        ("overlays/../../etc/passwd", |e| {
            matches!(e, ReadError::Escapes { .. })
        }),
        ("/etc/passwd", |e| matches!(e, ReadError::Absolute { .. })),
        ("overlays/dev/passwd", |e| {
            matches!(e, ReadError::SymlinkEscapes { .. })
        }),
        ("overlays/dev/up", |e| {
            matches!(e, ReadError::SymlinkEscapes { .. })
        }),
        ("overlays/dev/loop-a", |e| {
            matches!(e, ReadError::SymlinkLoop { .. })
        }),
        ("overlays/dev/big.yaml", |e| {
            matches!(e, ReadError::TooLarge { .. })
        }),
    ];
    for (path, expected) in cases {
        let err = reader.read(path).expect_err(path);
        assert!(expected(&err), "{path}: unexpected error {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(path), "error must name the path: {msg}");
        assert!(!msg.contains("root:x:0"), "nothing may be read: {msg}");
        assert!(
            !msg.contains("[core]"),
            "nothing of .git may be read: {msg}"
        );
        // Existence checks are confined the same way.
        if !matches!(err, ReadError::TooLarge { .. }) {
            assert!(reader.exists(path).is_err(), "{path}");
        }
    }
    assert!(matches!(reader.list("../"), Err(ReadError::Escapes { .. })));
}

#[test]
fn a_commits_tree_is_confined() {
    let dir = tempfile::tempdir().expect("tmp");
    hostile_repo(dir.path());
    let repo = Git2Repo::open_local(dir.path()).expect("open");
    let reader = repo.reader("env/dev").expect("reader");
    check(reader.as_ref());
}

#[test]
fn a_directory_is_confined() {
    let dir = tempfile::tempdir().expect("tmp");
    hostile_repo(dir.path());
    let reader = DirReader::open(dir.path()).expect("open");
    check(&reader);
    // The limit is configurable; the error carries it.
    let small = DirReader::open(dir.path())
        .expect("open")
        .with_max_file_size(4);
    let err = small
        .read("overlays/base/deployment.yaml")
        .expect_err("over 4 bytes");
    assert!(err.to_string().contains("4-byte limit"), "{err}");
}
