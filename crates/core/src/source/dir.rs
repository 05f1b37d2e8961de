//! [`TreeReader`](super::TreeReader) over a plain directory (a working copy,
//! or `render --overlay DIR`). Confinement is done by `confine`; this file
//! only answers lookups and opens files with `O_NOFOLLOW`, so a symlink
//! swapped in after resolution is refused rather than followed.

use super::confine::{Lookup, Node};
use super::{Backend, DEFAULT_MAX_FILE_SIZE, ReadError};
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A confined reader over a directory on disk.
#[derive(Debug, Clone)]
pub struct DirReader {
    root: PathBuf,
    max_file_size: u64,
}

impl DirReader {
    /// Opens `root` (which must be a directory).
    pub fn open(root: &Path) -> Result<Self, ReadError> {
        let shown = root.display().to_string();
        let root = fs::canonicalize(root).map_err(|source| ReadError::Io {
            path: shown.clone(),
            source,
        })?;
        if !root.is_dir() {
            return Err(ReadError::NotADirectory {
                path: shown.clone(),
                component: shown,
            });
        }
        Ok(Self {
            root,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        })
    }

    /// Sets the largest file this reader returns.
    pub fn with_max_file_size(mut self, limit: u64) -> Self {
        self.max_file_size = limit;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn join(&self, components: &[String]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(components);
        p
    }
}

impl Lookup for DirReader {
    fn lookup(&self, components: &[String]) -> Result<Node, ReadError> {
        let path = self.join(components);
        let shown = components.join("/");
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Node::Missing),
            Err(source) => {
                return Err(ReadError::Io {
                    path: shown,
                    source,
                });
            }
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(|source| ReadError::Io {
                path: shown.clone(),
                source,
            })?;
            let target = target.to_str().ok_or_else(|| ReadError::InvalidPath {
                path: shown.clone(),
                reason: "symlink target is not UTF-8".into(),
            })?;
            Ok(Node::Symlink {
                target: target.to_string(),
            })
        } else if ft.is_dir() {
            Ok(Node::Dir)
        } else if ft.is_file() {
            Ok(Node::File { size: meta.len() })
        } else {
            Err(ReadError::Unsupported {
                path: shown,
                what: "a device, socket or FIFO".into(),
            })
        }
    }
}

impl Backend for DirReader {
    fn label(&self) -> String {
        self.root.display().to_string()
    }

    fn max_file_size(&self) -> u64 {
        self.max_file_size
    }

    fn read_resolved(&self, shown: &str, components: &[String]) -> Result<Vec<u8>, ReadError> {
        let io = |source| ReadError::Io {
            path: shown.to_string(),
            source,
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.join(components))
            .map_err(io)?;
        // The file may have grown since lookup: never read past the limit.
        let mut buf = Vec::new();
        file.take(self.max_file_size + 1)
            .read_to_end(&mut buf)
            .map_err(io)?;
        if buf.len() as u64 > self.max_file_size {
            return Err(ReadError::TooLarge {
                path: shown.to_string(),
                size: buf.len() as u64,
                limit: self.max_file_size,
            });
        }
        Ok(buf)
    }

    fn list_resolved(&self, shown: &str, components: &[String]) -> Result<Vec<String>, ReadError> {
        let rd = fs::read_dir(self.join(components)).map_err(|source| ReadError::Io {
            path: shown.to_string(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| ReadError::Io {
                path: shown.to_string(),
                source,
            })?;
            match entry.file_name().into_string() {
                Ok(n) if n != ".git" => names.push(n),
                Ok(_) => {}
                Err(_) => {
                    return Err(ReadError::InvalidPath {
                        path: shown.to_string(),
                        reason: "a file name in this directory is not UTF-8".into(),
                    });
                }
            }
        }
        names.sort();
        Ok(names)
    }
}
