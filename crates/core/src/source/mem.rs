//! [`TreeReader`](super::TreeReader) over an in-memory tree: files and
//! symlinks by path, directories implied. The fake for tests and fuzzing,
//! held to the same confinement as the real readers (it only answers
//! lookups; `confine` decides what may be read).

use super::confine::{Lookup, Node};
use super::{Backend, DEFAULT_MAX_FILE_SIZE, ReadError};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Entry {
    File(Vec<u8>),
    Symlink(String),
}

/// An in-memory tree.
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    entries: BTreeMap<String, Entry>,
}

impl MemTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file at `path` (components separated by `/`).
    pub fn file(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.entries.insert(
            path.trim_matches('/').to_string(),
            Entry::File(content.into()),
        );
        self
    }

    /// Adds a symlink at `path` pointing at `target` (as written).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.insert(
            path.trim_matches('/').to_string(),
            Entry::Symlink(target.to_string()),
        );
        self
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || {
            let prefix = format!("{path}/");
            self.entries.keys().any(|k| k.starts_with(&prefix))
        }
    }
}

impl Lookup for MemTree {
    fn lookup(&self, components: &[String]) -> Result<Node, ReadError> {
        let path = components.join("/");
        Ok(match self.entries.get(&path) {
            Some(Entry::File(b)) => Node::File {
                size: b.len() as u64,
            },
            Some(Entry::Symlink(t)) => Node::Symlink { target: t.clone() },
            None if self.is_dir(&path) => Node::Dir,
            None => Node::Missing,
        })
    }
}

impl Backend for MemTree {
    fn label(&self) -> String {
        "memory".into()
    }

    fn max_file_size(&self) -> u64 {
        DEFAULT_MAX_FILE_SIZE
    }

    fn read_resolved(&self, shown: &str, components: &[String]) -> Result<Vec<u8>, ReadError> {
        match self.entries.get(&components.join("/")) {
            Some(Entry::File(b)) => Ok(b.clone()),
            _ => Err(ReadError::NotFound {
                path: shown.to_string(),
            }),
        }
    }

    fn list_resolved(&self, _shown: &str, components: &[String]) -> Result<Vec<String>, ReadError> {
        let dir = components.join("/");
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut names: Vec<String> = self
            .entries
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}
