//! Patch targets: group/version/kind/name/namespace (anchored regexes, as
//! in kustomize) and label/annotation selectors (Kubernetes syntax:
//! `a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`).

use super::kustomization::Target;
use super::object::Object;
use yaml_serde::Mapping;

#[derive(Debug)]
pub struct Selector {
    group: Option<regex::Regex>,
    version: Option<regex::Regex>,
    kind: Option<regex::Regex>,
    name: Option<regex::Regex>,
    namespace: Option<regex::Regex>,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
}

#[derive(Debug)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn anchored(field: &str, v: &Option<String>) -> Result<Option<regex::Regex>, String> {
    v.as_ref()
        .map(|s| {
            regex::Regex::new(&format!("^(?:{s})$")).map_err(|e| format!("target.{field}: {e}"))
        })
        .transpose()
}

impl Selector {
    pub fn new(t: &Target) -> Result<Self, String> {
        Ok(Self {
            group: anchored("group", &t.group)?,
            version: anchored("version", &t.version)?,
            kind: anchored("kind", &t.kind)?,
            name: anchored("name", &t.name)?,
            namespace: anchored("namespace", &t.namespace)?,
            labels: parse_selector("labelSelector", t.label_selector.as_deref())?,
            annotations: parse_selector("annotationSelector", t.annotation_selector.as_deref())?,
        })
    }

    pub fn matches(&self, o: &Object) -> bool {
        let re = |r: &Option<regex::Regex>, v: &str| r.as_ref().is_none_or(|r| r.is_match(v));
        re(&self.group, o.group())
            && re(&self.version, o.version())
            && re(&self.kind, o.kind())
            && (self.name.is_none() || o.ids.iter().any(|id| re(&self.name, &id.name)))
            && re(&self.namespace, o.namespace().unwrap_or(""))
            && satisfies(&self.labels, o.labels())
            && satisfies(&self.annotations, o.annotations())
    }
}

fn satisfies(reqs: &[Requirement], m: Option<&Mapping>) -> bool {
    let get = |k: &str| m.and_then(|m| m.get(k)).and_then(|v| v.as_str());
    reqs.iter().all(|r| match r {
        Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
        Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
        Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        Requirement::Exists(k) => get(k).is_some(),
        Requirement::NotExists(k) => get(k).is_none(),
    })
}

/// Splits on commas outside parentheses.
fn clauses(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_selector(field: &str, s: Option<&str>) -> Result<Vec<Requirement>, String> {
    let Some(s) = s else { return Ok(vec![]) };
    let mut out = Vec::new();
    for c in clauses(s)
        .into_iter()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("target.{field}: {c:?}: expected a (list)"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        let req = if let Some((k, v)) = c.split_once("!=") {
            Requirement::NotEq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = c.split_once("==") {
            Requirement::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = c.split_once('=') {
            Requirement::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = c.split_once(" notin ") {
            Requirement::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = c.split_once(" in ") {
            Requirement::In(k.trim().into(), set(rest)?)
        } else if let Some(k) = c.strip_prefix('!') {
            Requirement::NotExists(k.trim().into())
        } else if c
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_./".contains(ch))
        {
            Requirement::Exists(c.into())
        } else {
            return Err(format!("target.{field}: cannot parse {c:?}"));
        };
        out.push(req);
    }
    Ok(out)
}
