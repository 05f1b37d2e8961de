//! The tree-reader port: confined, size-capped reads of one tree (a
//! directory, an in-memory tree, or — in the shell's git adapter — a
//! commit). Every path goes through [`confine::resolve`]; nothing outside
//! the tree or under `.git` can be named.
//!
//! Must not: interpret file contents (that is `config` and `render`).

pub mod confine;
mod dir;
mod mem;

pub use confine::{MAX_SYMLINK_HOPS, Node, Resolved};
pub use dir::DirReader;
pub use mem::MemTree;

/// Every environment branch lives under this prefix (`env/dev`, …).
pub const ENV_BRANCH_PREFIX: &str = "env/";

/// Largest file a reader returns unless configured otherwise (4 MiB): config
/// files, manifests and policies are small; anything bigger is a mistake or
/// an attack.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// Why a confined read failed. Every variant names the path as given.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: absolute paths are not allowed; use a path relative to the repo root")]
    Absolute { path: String },
    #[error("{path}: the path leaves the repository (too many '..'); keep it inside the repo")]
    Escapes { path: String },
    #[error(
        "{path}: symlink {link} points to {target}, outside the repository; replace it with the file itself"
    )]
    SymlinkEscapes {
        path: String,
        link: String,
        target: String,
    },
    #[error(
        "{path}: reaches into a .git directory, which is never read (it holds git's own config and credentials); name a file of the config tree"
    )]
    GitDir { path: String },
    #[error("{path}: too many levels of symbolic links (a loop?); fix the symlinks")]
    SymlinkLoop { path: String },
    #[error("{path}: is {size} bytes, over the {limit}-byte limit for files in a config repo")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: not found")]
    NotFound { path: String },
    #[error("{path}: {component} is a file, not a directory")]
    NotADirectory { path: String, component: String },
    #[error("{path}: is a directory, not a file")]
    IsADirectory { path: String },
    #[error("{path}: {what} is not supported in a config repo")]
    Unsupported { path: String, what: String },
    #[error("{path}: invalid path: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{path}: is not valid UTF-8 text")]
    NotUtf8 { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The git adapter could not read the tree (its message).
    #[error("{path}: git: {message}")]
    Git { path: String, message: String },
}

/// Read-only, confined view of one tree (a directory, or a commit's tree).
///
/// Every path is relative to the tree root and goes through
/// [`confine::resolve`]: nothing outside the tree can be named, whatever the
/// path or the symlinks in the tree say.
pub trait TreeReader {
    /// Where this tree comes from, for messages: `env/dev@1a2b3c4`, `/srv/repo`.
    fn describe(&self) -> String;

    /// Resolves a path without reading it.
    fn resolve(&self, path: &str) -> Result<Resolved, ReadError>;

    /// Reads a whole file (size-limited).
    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError>;

    /// Names of the entries of a directory, sorted.
    fn list(&self, path: &str) -> Result<Vec<String>, ReadError>;

    /// Reads a file as UTF-8 text.
    fn read_string(&self, path: &str) -> Result<String, ReadError> {
        String::from_utf8(self.read(path)?).map_err(|_| ReadError::NotUtf8 {
            path: path.to_string(),
        })
    }

    /// Whether a path exists (after confinement; an escaping path is an error).
    fn exists(&self, path: &str) -> Result<bool, ReadError> {
        Ok(self.resolve(path)?.node != Node::Missing)
    }

    /// Whether a path is a directory.
    fn is_dir(&self, path: &str) -> Result<bool, ReadError> {
        Ok(self.resolve(path)?.node == Node::Dir)
    }

    /// A content id for what is at `path` (a git blob or tree id), when the
    /// backend has one: equal ids mean equal content. `None` for plain
    /// directories, which therefore are never cached.
    fn content_id(&self, _path: &str) -> Result<Option<String>, ReadError> {
        Ok(None)
    }
}

/// The backend half of a reader: a [`confine::Lookup`] plus raw access to
/// already-resolved components. [`TreeReader`] is implemented on top of it so
/// no backend can skip confinement.
pub trait Backend: confine::Lookup {
    fn label(&self) -> String;
    fn max_file_size(&self) -> u64;
    fn read_resolved(&self, shown: &str, components: &[String]) -> Result<Vec<u8>, ReadError>;
    fn list_resolved(&self, shown: &str, components: &[String]) -> Result<Vec<String>, ReadError>;
    /// Content id of resolved components, if the backend has ids.
    fn entry_id(&self, _components: &[String]) -> Option<String> {
        None
    }
}

impl<B: Backend> TreeReader for B {
    fn describe(&self) -> String {
        self.label()
    }

    fn resolve(&self, path: &str) -> Result<Resolved, ReadError> {
        confine::resolve(self, path)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let r = confine::resolve(self, path)?;
        match r.node {
            Node::File { size } if size > self.max_file_size() => Err(ReadError::TooLarge {
                path: path.to_string(),
                size,
                limit: self.max_file_size(),
            }),
            Node::File { .. } => self.read_resolved(path, &r.components),
            Node::Dir => Err(ReadError::IsADirectory {
                path: path.to_string(),
            }),
            Node::Missing => Err(ReadError::NotFound {
                path: path.to_string(),
            }),
            Node::Symlink { .. } => unreachable!("resolve expands symlinks"),
        }
    }

    fn content_id(&self, path: &str) -> Result<Option<String>, ReadError> {
        let r = confine::resolve(self, path)?;
        Ok(self.entry_id(&r.components))
    }

    fn list(&self, path: &str) -> Result<Vec<String>, ReadError> {
        let r = if path.is_empty() || path == "." {
            Resolved {
                components: vec![],
                node: Node::Dir,
            }
        } else {
            confine::resolve(self, path)?
        };
        match r.node {
            Node::Dir => self.list_resolved(path, &r.components),
            Node::Missing => Err(ReadError::NotFound {
                path: path.to_string(),
            }),
            _ => Err(ReadError::NotADirectory {
                path: path.to_string(),
                component: r.path(),
            }),
        }
    }
}
