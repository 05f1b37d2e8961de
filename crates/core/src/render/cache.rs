//! Render cache keyed by the content of an overlay's inputs.
//!
//! A render is recorded as the accesses it made (every path resolved,
//! listed or read, with the git blob/tree id of what it read). A later
//! render of the same overlay at another commit is a hit when replaying
//! those accesses against the new tree gives the same answers: a commit
//! that only touches other environments' files does not re-render this
//! one. Plain directories have no content ids and are never cached.

use super::{RenderError, Rendered, render};
use crate::source::{ReadError, Resolved, TreeReader};
use std::cell::RefCell;

#[derive(Debug, Clone, PartialEq)]
enum Access {
    Resolve {
        path: String,
        outcome: String,
    },
    Read {
        path: String,
        id: Option<String>,
    },
    List {
        path: String,
        names: Result<Vec<String>, String>,
    },
}

impl Access {
    fn still_holds(&self, tree: &dyn TreeReader) -> bool {
        match self {
            Access::Resolve { path, outcome } => describe(&tree.resolve(path)) == *outcome,
            Access::Read { path, id } => {
                id.is_some() && tree.content_id(path).ok().flatten() == *id
            }
            Access::List { path, names } => tree.list(path).map_err(|e| e.to_string()) == *names,
        }
    }
}

fn describe(r: &Result<Resolved, ReadError>) -> String {
    match r {
        Ok(r) => format!("{:?} {:?}", r.components, r.node),
        Err(e) => e.to_string(),
    }
}

/// A reader that logs every access it serves.
struct Recording<'a> {
    inner: &'a dyn TreeReader,
    log: RefCell<Vec<Access>>,
}

impl TreeReader for Recording<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn resolve(&self, path: &str) -> Result<Resolved, ReadError> {
        let r = self.inner.resolve(path);
        self.log.borrow_mut().push(Access::Resolve {
            path: path.to_string(),
            outcome: describe(&r),
        });
        r
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let id = self.inner.content_id(path).ok().flatten();
        self.log.borrow_mut().push(Access::Read {
            path: path.to_string(),
            id,
        });
        self.inner.read(path)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, ReadError> {
        let r = self.inner.list(path);
        self.log.borrow_mut().push(Access::List {
            path: path.to_string(),
            names: r.as_ref().map(Clone::clone).map_err(|e| e.to_string()),
        });
        r
    }

    fn content_id(&self, path: &str) -> Result<Option<String>, ReadError> {
        self.inner.content_id(path)
    }
}

struct Entry {
    dir: String,
    accesses: Vec<Access>,
    rendered: Rendered,
}

/// Most recent renders, per overlay directory.
pub struct RenderCache {
    entries: Vec<Entry>,
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl RenderCache {
    /// Keeps at most `capacity` renders (oldest evicted first).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity: capacity.max(1),
            hits: 0,
            misses: 0,
        }
    }

    /// Renders `dir` of `tree`, or returns the cached result when none of
    /// the inputs the cached render read has changed.
    pub fn render(&mut self, tree: &dyn TreeReader, dir: &str) -> Result<Rendered, RenderError> {
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.dir == dir && e.accesses.iter().all(|a| a.still_holds(tree)))
        {
            self.hits += 1;
            let e = self.entries.remove(i);
            let out = e.rendered.clone();
            self.entries.push(e); // most recently used last
            return Ok(out);
        }
        self.misses += 1;
        let rec = Recording {
            inner: tree,
            log: RefCell::new(Vec::new()),
        };
        let rendered = render(&rec, dir)?;
        let accesses = rec.log.into_inner();
        let cacheable = accesses
            .iter()
            .all(|a| !matches!(a, Access::Read { id: None, .. }));
        if cacheable {
            if self.entries.len() >= self.capacity {
                self.entries.remove(0);
            }
            self.entries.push(Entry {
                dir: dir.to_string(),
                accesses,
                rendered: rendered.clone(),
            });
        }
        Ok(rendered)
    }
}
