//! Render stage: a kustomize overlay → an ordered list of plain objects.
//!
//! Pure: reads files only through a [`TreeReader`] (so a hostile overlay
//! cannot name anything outside the repo) and does no other I/O. Supports
//! the subset of kustomize listed in [`kustomization::SUPPORTED_FIELDS`];
//! anything else is an error naming the field. Output matches `kubectl
//! kustomize` (v5): the golden suite in `tests/golden/` proves it.
//!
//! Pipeline per kustomization, as kustomize runs it: resources (bases
//! recursively) → components (each over what was accumulated) →
//! generators → patches → namespace → prefix/suffix → labels → annotations
//! → replicas → images → replacements → `transformers` configs. Then, once at the top: content-hash
//! suffixes, reference fix-up (built-in table plus `configurations` name
//! references from anywhere in the tree), `vars`, legacy kind order.

pub mod cache;
pub mod generate;
pub mod kustomization;
pub mod object;
pub mod patch;
pub mod plugins;
pub mod replace;
pub mod select;
pub mod transform;
pub mod vars;

use crate::source::{Node, ReadError, TreeReader};
use crate::yaml::{self, YamlError};
use kustomization::Kustomization;
use object::Object;
use std::collections::HashSet;
use yaml_serde::Value;

/// Names a kustomization file may have, in kustomize's order of preference.
pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{dir}: no kustomization.yaml; add one or point at the overlay directory")]
    NoKustomization { dir: String },
    #[error("{file}: {message}")]
    Kustomization { file: String, message: String },
    /// Fields the renderer does not support, in every kustomization file
    /// of the tree that has any: `(file, fields)`.
    #[error("{}", kustomization::describe_unsupported(.0))]
    Unsupported(Vec<(String, Vec<String>)>),
    #[error(
        "{file}: resources: {resource:?} is a remote base; remote bases are refused (vendor it into the repo)"
    )]
    RemoteBase { file: String, resource: String },
    #[error("kustomization cycle: {}; remove one of these references", .0.join(" → "))]
    Cycle(Vec<String>),
    #[error("{file}: {message}")]
    Resource { file: String, message: String },
    #[error("{file}: patches[{index}]: {message}")]
    Patch {
        file: String,
        index: usize,
        message: String,
    },
    #[error("{file}: {field}[{index}] ({name}): {message}")]
    Generator {
        file: String,
        field: &'static str,
        index: usize,
        name: String,
        message: String,
    },
    #[error(
        "{file}: replicas: no Deployment, StatefulSet, ReplicaSet or ReplicationController named {name:?}"
    )]
    Replicas { file: String, name: String },
}

/// The rendered objects of one overlay, in output order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub objects: Vec<Value>,
}

impl Rendered {
    /// YAML exactly as `kubectl kustomize` prints it (sorted keys, `---`).
    pub fn to_yaml(&self) -> String {
        yaml::to_string(&self.objects).unwrap_or_default()
    }
}

/// Renders the kustomization in `dir` (repo-relative; "" for the root).
pub fn render(tree: &dyn TreeReader, dir: &str) -> Result<Rendered, RenderError> {
    let mut r = Renderer {
        tree,
        stack: Vec::new(),
        name_refs: Vec::new(),
        vars: Vec::new(),
        var_refs: Vec::new(),
    };
    let start = r.canonical_dir(dir)?;
    let mut objects = match r.build(&start, Role::Base { nested: false }) {
        Err(RenderError::Unsupported(first)) => {
            // Name every file of the tree with an unsupported field, not
            // only the first met.
            let mut found = Vec::new();
            r.unsupported_in_tree(&start, &mut HashSet::new(), &mut found);
            return Err(RenderError::Unsupported(if found.is_empty() {
                first
            } else {
                found
            }));
        }
        other => other?,
    };
    let order = match r.kustomization(&start)?.1.sort_options {
        None => kustomization::Order::default(),
        Some(s) => s.order().map_err(|message| RenderError::Kustomization {
            file: KUSTOMIZATION_FILES
                .iter()
                .map(|n| join(&start, n))
                .find(|f| tree.exists(f).unwrap_or(false))
                .unwrap_or_else(|| start.clone()),
            message,
        })?,
    };
    // Content hashes last: they cover the final data and names.
    for o in objects.iter_mut().filter(|o| o.hash_suffix) {
        let name = format!("{}-{}", o.name(), generate::content_hash(o));
        o.set_name(&name);
    }
    transform::fix_references(&mut objects, &r.name_refs);
    vars::apply(&mut objects, &r.vars, &r.var_refs).map_err(|message| {
        let file = KUSTOMIZATION_FILES
            .iter()
            .map(|n| join(&start, n))
            .find(|f| tree.exists(f).unwrap_or(false))
            .unwrap_or_else(|| start.clone());
        RenderError::Kustomization { file, message }
    })?;
    for o in objects.iter_mut() {
        drop_empty_annotations(o);
    }
    if let kustomization::Order::Legacy { first, last } = &order {
        objects.sort_by_cached_key(|o| legacy_key(o, first, last));
    }
    Ok(Rendered {
        objects: objects.into_iter().map(|o| Value::Mapping(o.doc)).collect(),
    })
}

/// kustomize prints no `metadata.annotations` that is null or empty (it
/// rebuilds them after its own bookkeeping annotations go); nested
/// templates keep theirs as written.
fn drop_empty_annotations(o: &mut Object) {
    let empty = match o.metadata().and_then(|m| m.get("annotations")) {
        Some(Value::Null) => true,
        Some(Value::Mapping(m)) => m.is_empty(),
        Some(Value::Sequence(s)) => s.is_empty(),
        _ => false,
    };
    if empty {
        o.metadata_mut().remove("annotations");
    }
}

/// kustomize's default ("legacy") order: a fixed rank for well-known kinds,
/// then group/version/kind, namespace and name.
/// (`first` and `last`: the ranked kinds, kustomize's own or a
/// kustomization's `sortOptions.legacySortOptions`).
fn legacy_key(o: &Object, first: &[String], last: &[String]) -> (i32, String, String) {
    let kind = o.kind();
    let rank = if let Some(i) = first.iter().position(|k| k == kind) {
        i as i32 - first.len() as i32
    } else if let Some(i) = last.iter().position(|k| k == kind) {
        1 + i as i32
    } else {
        0
    };
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    let gvk = format!(
        "{}_{}_{}",
        or(o.group(), "~G"),
        or(o.version(), "~V"),
        or(kind, "~K")
    );
    // Within one kind, kustomize compares "namespace|name" as one string:
    // `app-a` sorts before `app` ('-' < '|').
    (
        rank,
        gvk,
        format!("{}|{}", o.namespace().unwrap_or("~X"), o.name()),
    )
}

/// (apiVersion, kind, namespace, name): what must be unique among
/// resources (one kind and name in two versions are two resources, as in
/// kustomize's resource ids).
type ObjectKey = (String, String, Option<String>, String);

fn key_of(o: &Object) -> ObjectKey {
    (
        o.api_version().to_string(),
        o.kind().to_string(),
        o.namespace().map(str::to_string),
        o.name().to_string(),
    )
}

/// What a kustomization is built as.
enum Role {
    /// The overlay rendered (`nested: false`) or a base under `resources`.
    Base { nested: bool },
    /// A `kind: Component` under `components`, applied to its parent's
    /// objects so far.
    Component(Vec<Object>),
}

struct Renderer<'a> {
    tree: &'a dyn TreeReader,
    /// Kustomization directories being built, outermost first (cycle detection).
    stack: Vec<String>,
    /// Name references from `configurations` anywhere in the tree (merged
    /// upward as kustomize merges its bases' configs), for the final fix-up.
    name_refs: Vec<transform::ExtraRef>,
    /// `vars` from anywhere in the tree, and `varReference` field specs.
    vars: Vec<vars::Var>,
    var_refs: Vec<kustomization::FieldSpec>,
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() || rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

fn is_remote(r: &str) -> bool {
    r.contains("://")
        || r.starts_with("git@")
        || r.starts_with("github.com/")
        || r.starts_with("gitlab.com/")
        || r.starts_with("bitbucket.org/")
}

struct DirFiles<'a> {
    tree: &'a dyn TreeReader,
    dir: &'a str,
}

impl generate::Files for DirFiles<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.tree
            .read(&join(self.dir, path))
            .map_err(|e| e.to_string())
    }
}

impl Renderer<'_> {
    fn canonical_dir(&self, dir: &str) -> Result<String, RenderError> {
        if dir.is_empty() || dir == "." {
            return Ok(String::new());
        }
        let r = self.tree.resolve(dir)?;
        match r.node {
            Node::Dir => Ok(r.path()),
            Node::Missing => Err(ReadError::NotFound {
                path: dir.to_string(),
            }
            .into()),
            _ => Err(RenderError::NoKustomization {
                dir: dir.to_string(),
            }),
        }
    }

    fn kustomization(&self, dir: &str) -> Result<(String, Kustomization), RenderError> {
        for name in KUSTOMIZATION_FILES {
            let file = join(dir, name);
            if self.tree.exists(&file)? {
                let text = self.tree.read_string(&file)?;
                let doc: Value = yaml::from_str(&file, &text)?;
                let unsupported = kustomization::unsupported_names(&doc);
                if !unsupported.is_empty() {
                    return Err(RenderError::Unsupported(vec![(file, unsupported)]));
                }
                let mut k: Kustomization =
                    yaml_serde::from_value(doc).map_err(|e| RenderError::Kustomization {
                        file: file.clone(),
                        message: e.to_string(),
                    })?;
                k.fix(&|p| self.tree.exists(&join(dir, p)).unwrap_or(false));
                if let Some(kind) = &k.kind
                    && kind != "Kustomization"
                    && kind != "Component"
                {
                    return Err(RenderError::Kustomization {
                        file,
                        message: format!(
                            "kind {kind:?} is not a kustomization; write kind: Kustomization (or Component, for a directory listed under components)"
                        ),
                    });
                }
                return Ok((file, k));
            }
        }
        Err(RenderError::NoKustomization {
            dir: if dir.is_empty() {
                ".".into()
            } else {
                dir.to_string()
            },
        })
    }

    /// Collects `(file, unsupported fields)` of the kustomization in `dir`
    /// and of every directory it lists (resources, bases, components),
    /// each once; unreadable parts are skipped (the build reports them).
    fn unsupported_in_tree(
        &self,
        dir: &str,
        seen: &mut HashSet<String>,
        out: &mut Vec<(String, Vec<String>)>,
    ) {
        if !seen.insert(dir.to_string()) {
            return;
        }
        let Some(file) = KUSTOMIZATION_FILES
            .iter()
            .map(|n| join(dir, n))
            .find(|f| self.tree.exists(f).unwrap_or(false))
        else {
            return;
        };
        let Ok(text) = self.tree.read_string(&file) else {
            return;
        };
        let Ok(doc) = yaml::from_str::<Value>(&file, &text) else {
            return;
        };
        let names = kustomization::unsupported_names(&doc);
        if !names.is_empty() {
            out.push((file.clone(), names));
        }
        for field in ["resources", "bases", "components"] {
            let entries = doc.get(field).and_then(Value::as_sequence);
            for entry in entries.into_iter().flatten().filter_map(Value::as_str) {
                if let Ok((_, resolved)) = self.entry(&file, dir, entry)
                    && matches!(resolved.node, Node::Dir)
                {
                    self.unsupported_in_tree(&resolved.path(), seen, out);
                }
            }
        }
    }

    /// Builds the kustomization in `dir`: a base or the overlay itself
    /// ([`Role::Base`]), or a Component applied on top of what its parent
    /// accumulated so far ([`Role::Component`]).
    fn build(&mut self, dir: &str, role: Role) -> Result<Vec<Object>, RenderError> {
        if let Some(i) = self.stack.iter().position(|d| d == dir) {
            let mut cycle: Vec<String> = self.stack[i..].to_vec();
            cycle.push(dir.to_string());
            return Err(RenderError::Cycle(cycle));
        }
        self.stack.push(dir.to_string());
        let result = self.build_inner(dir, role);
        self.stack.pop();
        result
    }

    fn build_inner(&mut self, dir: &str, role: Role) -> Result<Vec<Object>, RenderError> {
        let (file, k) = self.kustomization(dir)?;
        let is_component = k.kind.as_deref() == Some("Component");
        let mut objects: Vec<Object> = match role {
            Role::Component(objects) if is_component => objects,
            Role::Component(_) => {
                return Err(RenderError::Kustomization {
                    file,
                    message: "is listed under components but is not kind: Component; list it under resources, or make it a Component".into(),
                });
            }
            Role::Base { nested: true } if is_component => {
                return Err(RenderError::Kustomization {
                    file,
                    message: "is a Component listed under resources; list it under components"
                        .into(),
                });
            }
            Role::Base { .. } => Vec::new(),
        };
        let mut seen: HashSet<ObjectKey> = objects.iter().map(key_of).collect();

        for res in &k.resources {
            let (path, resolved) = self.entry(&file, dir, res)?;
            let added = match resolved.node {
                Node::Dir => self.build(&resolved.path(), Role::Base { nested: true })?,
                Node::Missing => return Err(ReadError::NotFound { path }.into()),
                _ => self.load_file(&path)?,
            };
            for o in added {
                if !seen.insert(key_of(&o)) {
                    return Err(RenderError::Resource {
                        file: file.clone(),
                        message: format!(
                            "{} is listed twice (directly or through two bases)",
                            o.describe()
                        ),
                    });
                }
                objects.push(o);
            }
        }

        for (i, c) in k.configurations.iter().enumerate() {
            let path = join(dir, c);
            let text = self.tree.read_string(&path)?;
            let doc: Value = yaml::from_str(&path, &text)?;
            let config: kustomization::TransformerConfig = yaml_serde::from_value(doc)
                .map_err(|e| RenderError::Kustomization {
                    file: file.clone(),
                    message: format!(
                        "configurations[{i}] ({path}): {e} (of a transformer configuration, nameReference and varReference are supported)"
                    ),
                })?;
            self.var_refs.extend(config.var_reference);
            for nr in config.name_reference {
                for fs in nr.field_specs {
                    self.name_refs.push(transform::ExtraRef {
                        referrer_kind: fs.kind,
                        referrer_group: fs.group,
                        path: fs.path,
                        referred_kind: nr.kind.clone(),
                    });
                }
            }
        }

        for v in &k.vars {
            if self.vars.iter().any(|x| x.name == v.name) {
                return Err(RenderError::Kustomization {
                    file: file.clone(),
                    message: format!(
                        "var {} is defined twice (here and in another kustomization of this tree); rename one",
                        v.name
                    ),
                });
            }
            self.vars.push(v.clone());
        }

        // Components after the resources, in order, each over everything
        // accumulated so far (its own resources joining it), before this
        // kustomization's own generators and transformers.
        for c in &k.components {
            let (path, resolved) = self.entry(&file, dir, c)?;
            match resolved.node {
                Node::Dir => {
                    objects = self.build(&resolved.path(), Role::Component(objects))?;
                }
                Node::Missing => return Err(ReadError::NotFound { path }.into()),
                _ => {
                    return Err(RenderError::Kustomization {
                        file: file.clone(),
                        message: format!(
                            "components: {c:?} is a file; list the Component's directory"
                        ),
                    });
                }
            }
        }

        let global = k.generator_options.as_ref();
        let files = DirFiles {
            tree: self.tree,
            dir,
        };
        for (field, kind, list) in [
            ("configMapGenerator", "ConfigMap", &k.config_map_generator),
            ("secretGenerator", "Secret", &k.secret_generator),
        ] {
            for (index, g) in list.iter().enumerate() {
                let err = |message: String| RenderError::Generator {
                    file: file.clone(),
                    field,
                    index,
                    name: g.name.clone(),
                    message,
                };
                let new = generate::generate(kind, g, global, &files).map_err(err)?;
                let behavior = g.behavior.as_deref().unwrap_or("create");
                let existing = objects.iter_mut().find(|o| {
                    o.kind() == kind
                        && o.had_name(&g.name)
                        && (g.namespace.is_none() || o.namespace() == g.namespace.as_deref())
                });
                match (behavior, existing) {
                    ("create", None) => objects.push(new),
                    ("create", Some(_)) => {
                        return Err(err(format!(
                            "a {kind} named {:?} already exists; use behavior: merge or replace",
                            g.name
                        )));
                    }
                    ("merge" | "replace", Some(o)) => {
                        generate::apply_behavior(o, new, behavior == "replace")
                    }
                    ("merge" | "replace", None) => {
                        return Err(err(format!(
                            "behavior: {behavior} needs an existing {kind} named {:?} from a base",
                            g.name
                        )));
                    }
                    (other, _) => {
                        return Err(err(format!(
                            "behavior {other:?} is not valid; use create, merge or replace"
                        )));
                    }
                }
            }
        }

        for (index, p) in k.patches.iter().enumerate() {
            self.apply_patch(&mut objects, dir, &file, index, p)?;
        }
        if let Some(ns) = &k.namespace {
            transform::namespace(&mut objects, ns).map_err(|message| {
                RenderError::Kustomization {
                    file: file.clone(),
                    message,
                }
            })?;
        }
        let (prefix, suffix) = (
            k.name_prefix.as_deref().unwrap_or(""),
            k.name_suffix.as_deref().unwrap_or(""),
        );
        if !prefix.is_empty() || !suffix.is_empty() {
            transform::prefix_suffix(&mut objects, prefix, suffix);
        }
        // `labels` entries first, then `commonLabels` (which wins a key
        // both set), as kustomize configures its label transformers.
        for l in &k.labels {
            transform::labels(
                &mut objects,
                &l.pairs,
                l.include_selectors,
                l.include_templates,
            );
            transform::pairs_at(&mut objects, &l.pairs, &l.fields);
        }
        transform::labels(&mut objects, &k.common_labels, true, true);
        transform::annotations(&mut objects, &k.common_annotations);
        for r in &k.replicas {
            if !transform::replicas(&mut objects, &r.name, r.count) {
                return Err(RenderError::Replicas {
                    file: file.clone(),
                    name: r.name.clone(),
                });
            }
        }
        for img in &k.images {
            kustomization::check_image(img).map_err(|message| RenderError::Kustomization {
                file: file.clone(),
                message,
            })?;
        }
        transform::images(&mut objects, &k.images);
        if !k.replacements.is_empty() {
            let replacements = self.replacements(dir, &file, &k.replacements)?;
            replace::apply(&mut objects, &replacements).map_err(|message| {
                RenderError::Kustomization {
                    file: file.clone(),
                    message,
                }
            })?;
        }
        for (i, t) in k.transformers.iter().enumerate() {
            self.run_transformer(&mut objects, dir, &file, i, t)?;
        }
        Ok(objects)
    }

    /// A `resources` or `components` entry of the kustomization `file` in
    /// `dir`: its repo path and what is there (a remote base is refused).
    fn entry(
        &self,
        file: &str,
        dir: &str,
        entry: &str,
    ) -> Result<(String, crate::source::Resolved), RenderError> {
        if is_remote(entry) {
            return Err(RenderError::RemoteBase {
                file: file.to_string(),
                resource: entry.to_string(),
            });
        }
        let path = join(dir, entry);
        let resolved = self.tree.resolve(&path)?;
        Ok((path, resolved))
    }

    /// One entry of `transformers`: a file of built-in transformer
    /// configurations, or one written inline.
    fn run_transformer(
        &self,
        objects: &mut Vec<Object>,
        dir: &str,
        file: &str,
        index: usize,
        entry: &str,
    ) -> Result<(), RenderError> {
        let err = |message: String| RenderError::Kustomization {
            file: file.to_string(),
            message: format!("transformers[{index}]: {message}"),
        };
        let (source, text) = if entry.contains('\n') {
            (format!("{file} (transformers[{index}])"), entry.to_string())
        } else {
            let path = join(dir, entry);
            if matches!(self.tree.resolve(&path)?.node, Node::Dir) {
                return Err(err(format!(
                    "{entry:?} is a directory; list transformer configuration files"
                )));
            }
            (path.clone(), self.tree.read_string(&path)?)
        };
        for doc in yaml::documents(&source, &text)? {
            match plugins::parse(doc).map_err(&err)? {
                plugins::Plugin::Labels { pairs, specs } => {
                    transform::pairs_at(objects, &pairs, &specs)
                }
                plugins::Plugin::Annotations { pairs, specs } => {
                    transform::pairs_at(objects, &pairs, &specs)
                }
                plugins::Plugin::PrefixSuffix { prefix, suffix } => {
                    transform::prefix_suffix(objects, &prefix, &suffix)
                }
                plugins::Plugin::Namespace(ns) => {
                    transform::namespace(objects, &ns).map_err(&err)?
                }
                plugins::Plugin::Image(image) => {
                    kustomization::check_image(&image).map_err(&err)?;
                    transform::images(objects, std::slice::from_ref(&image))
                }
                plugins::Plugin::Patch(p) => self.apply_patch(objects, dir, file, index, &p)?,
            }
        }
        Ok(())
    }

    /// `replacements` with every `path:` entry read from its file (one
    /// replacement or a list of them).
    fn replacements(
        &self,
        dir: &str,
        file: &str,
        list: &[replace::Replacement],
    ) -> Result<Vec<replace::Replacement>, RenderError> {
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let Some(p) = &r.path else {
                out.push(r.clone());
                continue;
            };
            if r.source.is_some() || !r.targets.is_empty() {
                return Err(RenderError::Kustomization {
                    file: file.to_string(),
                    message: format!(
                        "replacements[{i}]: give either path or source and targets, not both"
                    ),
                });
            }
            let path = join(dir, p);
            let text = self.tree.read_string(&path)?;
            let doc: Value = yaml::from_str(&path, &text)?;
            let bad = |e: yaml_serde::Error| RenderError::Kustomization {
                file: path.clone(),
                message: format!("not a replacement or a list of them: {e}"),
            };
            match doc {
                Value::Sequence(_) => out
                    .extend(yaml_serde::from_value::<Vec<replace::Replacement>>(doc).map_err(bad)?),
                other => out.push(yaml_serde::from_value(other).map_err(bad)?),
            }
        }
        Ok(out)
    }

    fn load_file(&self, path: &str) -> Result<Vec<Object>, RenderError> {
        let text = self.tree.read_string(path)?;
        let mut out = Vec::new();
        for doc in yaml::documents(path, &text)? {
            let Value::Mapping(m) = doc else {
                return Err(RenderError::Resource {
                    file: path.to_string(),
                    message: "a document is not a mapping (expected a Kubernetes object)".into(),
                });
            };
            if object::get_str(&m, "kind").is_some_and(|k| k.ends_with("List"))
                && let Some(Value::Sequence(items)) = m.get("items")
            {
                for item in items {
                    out.push(self.check_object(path, item.clone())?);
                }
                continue;
            }
            out.push(self.check_object(path, Value::Mapping(m))?);
        }
        Ok(out)
    }

    fn check_object(&self, path: &str, v: Value) -> Result<Object, RenderError> {
        let Value::Mapping(m) = v else {
            return Err(RenderError::Resource {
                file: path.to_string(),
                message: "a list item is not a mapping".into(),
            });
        };
        let o = Object::new(m);
        let missing = if o.api_version().is_empty() {
            Some("apiVersion")
        } else if o.kind().is_empty() {
            Some("kind")
        } else if o.name().is_empty() {
            Some("metadata.name")
        } else {
            None
        };
        if let Some(field) = missing {
            return Err(RenderError::Resource {
                file: path.to_string(),
                message: format!(
                    "an object has no {field}; every resource needs apiVersion, kind and metadata.name"
                ),
            });
        }
        // kustomize's own file, not an object (a Flux `Kustomization`
        // object of kustomize.toolkit.fluxcd.io is an ordinary resource).
        if o.kind() == "Kustomization"
            && (o.group() == "kustomize.config.k8s.io" || o.api_version().is_empty())
        {
            return Err(RenderError::Resource {
                file: path.to_string(),
                message: "is a Kustomization: list its directory in resources, not the file".into(),
            });
        }
        Ok(o)
    }

    fn apply_patch(
        &self,
        objects: &mut Vec<Object>,
        dir: &str,
        file: &str,
        index: usize,
        p: &kustomization::Patch,
    ) -> Result<(), RenderError> {
        let err = |message: String| RenderError::Patch {
            file: file.to_string(),
            index,
            message,
        };
        let (source, text) = match (&p.path, &p.patch) {
            (Some(path), None) => {
                let full = join(dir, path);
                (full.clone(), self.tree.read_string(&full)?)
            }
            (None, Some(inline)) => (format!("{file} (patches[{index}])"), inline.clone()),
            _ => return Err(err("give exactly one of path or patch".into())),
        };
        let docs = yaml::documents(&source, &text)?;
        let selector = p
            .target
            .as_ref()
            .map(select::Selector::new)
            .transpose()
            .map_err(err)?;
        let opts = p.options.clone().unwrap_or_default();
        // JSON6902: one sequence of operations.
        if let [Value::Sequence(ops)] = docs.as_slice() {
            let selector = selector.ok_or_else(|| {
                err("a JSON6902 patch (a list of operations) needs a target".into())
            })?;
            for o in objects.iter_mut().filter(|o| selector.matches(o)) {
                o.edit(|doc| patch::json6902(doc, ops))
                    .map_err(|e| err(format!("{}: {e}", o.describe())))?;
                self.after_patch(o, &opts).map_err(&err)?;
            }
            return Ok(());
        }
        for doc in docs {
            let Value::Mapping(pm) = doc else {
                return Err(err("a patch document must be a mapping (strategic merge) or a list of operations (JSON6902)".into()));
            };
            let targets: Vec<usize> = match &selector {
                Some(s) => (0..objects.len())
                    .filter(|&i| s.matches(&objects[i]))
                    .collect(),
                None => {
                    let probe = Object::new(pm.clone());
                    if probe.kind().is_empty() || probe.name().is_empty() {
                        return Err(err(
                            "a strategic-merge patch without target needs kind and metadata.name"
                                .into(),
                        ));
                    }
                    let found: Vec<usize> = (0..objects.len())
                        .filter(|&i| {
                            let o = &objects[i];
                            o.kind() == probe.kind()
                                && o.group() == probe.group()
                                && o.had_name(probe.name())
                                && (probe.namespace().is_none()
                                    || o.ids
                                        .iter()
                                        .any(|id| id.namespace.as_deref() == probe.namespace()))
                        })
                        .collect();
                    if found.is_empty() {
                        return Err(err(format!(
                            "no {} named {:?} to patch",
                            probe.kind(),
                            probe.name()
                        )));
                    }
                    found
                }
            };
            let mut deleted = Vec::new();
            for i in targets {
                let o = &mut objects[i];
                // The patch's own identity never renames its target.
                let mut pm = pm.clone();
                if selector.is_some() || !opts.allow_name_change {
                    if let Some(Value::Mapping(meta)) = pm.get_mut("metadata") {
                        meta.insert("name".into(), o.name().into());
                        if let Some(ns) = o.namespace() {
                            meta.insert("namespace".into(), ns.into());
                        } else {
                            meta.remove("namespace");
                        }
                    }
                    if !opts.allow_kind_change {
                        pm.insert("kind".into(), o.kind().into());
                        pm.insert("apiVersion".into(), o.api_version().into());
                    }
                }
                match patch::strategic_merge(&mut o.doc, &pm)
                    .map_err(|e| err(format!("{}: {e}", o.describe())))?
                {
                    patch::SmpOutcome::Patched => self.after_patch(o, &opts).map_err(&err)?,
                    patch::SmpOutcome::Deleted => deleted.push(i),
                }
            }
            for i in deleted.into_iter().rev() {
                objects.remove(i);
            }
        }
        Ok(())
    }

    fn after_patch(
        &self,
        o: &mut Object,
        opts: &kustomization::PatchOptions,
    ) -> Result<(), String> {
        let before = o.ids.last().cloned();
        if before.as_ref().map(|id| id.name.as_str()) != Some(o.name()) && !opts.allow_name_change {
            return Err(format!(
                "the patch renames {} to {:?}; set options.allowNameChange: true if that is intended",
                before.map(|b| b.name).unwrap_or_default(),
                o.name()
            ));
        }
        o.record_id();
        Ok(())
    }
}

/// The image references in rendered objects (containers and init containers).
pub fn images(r: &Rendered) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Mapping(m) => {
                for (k, child) in m {
                    if matches!(
                        k.as_str(),
                        Some("containers" | "initContainers" | "ephemeralContainers")
                    ) && let Value::Sequence(cs) = child
                    {
                        out.extend(cs.iter().filter_map(|c| {
                            c.as_mapping()?.get("image")?.as_str().map(str::to_string)
                        }));
                    } else {
                        walk(child, out);
                    }
                }
            }
            Value::Sequence(s) => s.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for o in &r.objects {
        walk(o, &mut out);
    }
    out.sort();
    out.dedup();
    out
}
