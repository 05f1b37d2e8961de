//! Path confinement shared by every [`TreeReader`](super::TreeReader).
//!
//! A config repo is untrusted input: a kustomization may name `../../etc`,
//! an absolute path, a symlink that leaves the tree or loops, or git's own
//! `.git` directory (credentials live there). Every read
//! goes through [`resolve`], which walks the path one component at a time
//! over a [`Lookup`] (a git tree or a directory), follows symlinks lexically
//! inside the tree, and refuses anything that would leave it. The backends
//! only answer "what is at these components"; they never open a path that
//! has not been resolved here first.
//!
//! Written by hand: no crate resolves symlinks against an abstract tree (git
//! trees are not a filesystem, so `std::fs::canonicalize` cannot be used).

use super::ReadError;

/// Symlink hops allowed while resolving one path (Linux uses 40 too).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// What a backend finds at a path of already-confined components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { size: u64 },
    Symlink { target: String },
    Missing,
}

/// A backend that can tell what is at a confined path.
pub trait Lookup {
    fn lookup(&self, components: &[String]) -> Result<Node, ReadError>;
}

/// The result of resolving a path: the confined components and what is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub components: Vec<String>,
    pub node: Node,
}

impl Resolved {
    pub fn path(&self) -> String {
        self.components.join("/")
    }
}

/// Splits a user-supplied, repo-relative path into components, rejecting
/// absolute paths and characters no config path needs.
pub fn split(path: &str) -> Result<Vec<String>, ReadError> {
    let invalid = |reason: &str| ReadError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if path.is_empty() {
        return Err(invalid("the path is empty"));
    }
    if path.contains('\0') {
        return Err(invalid("the path contains a NUL byte"));
    }
    if path.starts_with('/') || path.starts_with('\\') || has_drive_prefix(path) {
        return Err(ReadError::Absolute {
            path: path.to_string(),
        });
    }
    if path.contains('\\') {
        return Err(invalid("backslashes are not path separators here; use '/'"));
    }
    Ok(path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect())
}

fn has_drive_prefix(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Resolves `path` (relative to the tree root) to confined components.
///
/// `..` is allowed while it stays inside the tree (`overlays/dev/../base`);
/// a `..` above the root, an absolute symlink target, a symlink whose target
/// leaves the tree and a chain of more than [`MAX_SYMLINK_HOPS`] symlinks are
/// errors naming `path`. A missing final component resolves to
/// [`Node::Missing`]; a missing intermediate directory is `NotFound`.
pub fn resolve(lookup: &dyn Lookup, path: &str) -> Result<Resolved, ReadError> {
    let mut pending: Vec<String> = split(path)?;
    pending.reverse(); // pop() takes the next component
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0usize;
    let mut node = Node::Dir; // the root
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                if done.pop().is_none() {
                    return Err(ReadError::Escapes {
                        path: path.to_string(),
                    });
                }
                node = Node::Dir;
                continue;
            }
            _ => {}
        }
        match node {
            Node::Dir => {}
            Node::File { .. } => {
                return Err(ReadError::NotADirectory {
                    path: path.to_string(),
                    component: done.join("/"),
                });
            }
            Node::Missing => {
                return Err(ReadError::NotFound {
                    path: path.to_string(),
                });
            }
            Node::Symlink { .. } => unreachable!("symlinks are expanded below"),
        }
        // Git's own files are never config: a CI checkout keeps its push
        // token in `.git/config`. Checked on every component, so a symlink
        // into `.git` is refused as well.
        if component.eq_ignore_ascii_case(".git") {
            return Err(ReadError::GitDir {
                path: path.to_string(),
            });
        }
        done.push(component);
        node = lookup.lookup(&done)?;
        if let Node::Symlink { target } = &node {
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(ReadError::SymlinkLoop {
                    path: path.to_string(),
                });
            }
            if target.starts_with('/') || has_drive_prefix(target) {
                return Err(ReadError::SymlinkEscapes {
                    path: path.to_string(),
                    link: done.join("/"),
                    target: target.clone(),
                });
            }
            let target_components = split(target).map_err(|_| ReadError::SymlinkEscapes {
                path: path.to_string(),
                link: done.join("/"),
                target: target.clone(),
            })?;
            // The link is replaced by its target, read relative to the link's directory.
            let link = done.join("/");
            done.pop();
            // Check the target stays inside the tree before walking it, so the
            // error names the link rather than a later component.
            let mut depth = done.len() as isize;
            for c in &target_components {
                match c.as_str() {
                    "." => {}
                    ".." => depth -= 1,
                    _ => depth += 1,
                }
                if depth < 0 {
                    return Err(ReadError::SymlinkEscapes {
                        path: path.to_string(),
                        link,
                        target: target.clone(),
                    });
                }
            }
            pending.extend(target_components.into_iter().rev());
            node = Node::Dir;
        }
    }
    Ok(Resolved {
        components: done,
        node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory tree: path → node.
    struct Fake(BTreeMap<String, Node>);

    impl Lookup for Fake {
        fn lookup(&self, c: &[String]) -> Result<Node, ReadError> {
            Ok(self.0.get(&c.join("/")).cloned().unwrap_or(Node::Missing))
        }
    }

    fn tree(entries: &[(&str, Node)]) -> Fake {
        Fake(
            entries
                .iter()
                .map(|(p, n)| (p.to_string(), n.clone()))
                .collect(),
        )
    }

    fn link(t: &str) -> Node {
        Node::Symlink {
            target: t.to_string(),
        }
    }

    #[test]
    fn dotdot_inside_the_tree_is_fine_above_it_is_not() {
        let t = tree(&[
            ("overlays", Node::Dir),
            ("overlays/dev", Node::Dir),
            ("overlays/base", Node::Dir),
            ("overlays/base/k.yaml", Node::File { size: 3 }),
        ]);
        let r = resolve(&t, "overlays/dev/../base/k.yaml").unwrap();
        assert_eq!(r.path(), "overlays/base/k.yaml");
        assert!(matches!(
            resolve(&t, "overlays/../../etc/passwd"),
            Err(ReadError::Escapes { .. })
        ));
        assert!(matches!(
            resolve(&t, "/etc/passwd"),
            Err(ReadError::Absolute { .. })
        ));
        assert!(matches!(
            resolve(&t, "C:/x"),
            Err(ReadError::Absolute { .. })
        ));
    }

    #[test]
    fn symlinks_resolve_inside_and_are_refused_outside() {
        let t = tree(&[
            ("a", Node::Dir),
            ("a/real.yaml", Node::File { size: 1 }),
            ("a/ok", link("real.yaml")),
            ("a/up", link("../a/real.yaml")),
            ("a/out", link("../../secret")),
            ("a/abs", link("/etc/passwd")),
            ("loop1", link("loop2")),
            ("loop2", link("loop1")),
            ("dirlink", link("a")),
        ]);
        assert_eq!(resolve(&t, "a/ok").unwrap().path(), "a/real.yaml");
        assert_eq!(resolve(&t, "a/up").unwrap().path(), "a/real.yaml");
        assert_eq!(
            resolve(&t, "dirlink/real.yaml").unwrap().path(),
            "a/real.yaml"
        );
        assert!(matches!(
            resolve(&t, "a/out"),
            Err(ReadError::SymlinkEscapes { .. })
        ));
        assert!(matches!(
            resolve(&t, "a/abs"),
            Err(ReadError::SymlinkEscapes { .. })
        ));
        assert!(matches!(
            resolve(&t, "loop1"),
            Err(ReadError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn missing_and_through_file() {
        let t = tree(&[("f", Node::File { size: 1 })]);
        assert_eq!(resolve(&t, "nope").unwrap().node, Node::Missing);
        assert!(matches!(
            resolve(&t, "nope/x"),
            Err(ReadError::NotFound { .. })
        ));
        assert!(matches!(
            resolve(&t, "f/x"),
            Err(ReadError::NotADirectory { .. })
        ));
        assert!(matches!(
            resolve(&t, ""),
            Err(ReadError::InvalidPath { .. })
        ));
        assert!(matches!(
            resolve(&t, "a\\b"),
            Err(ReadError::InvalidPath { .. })
        ));
    }
}
