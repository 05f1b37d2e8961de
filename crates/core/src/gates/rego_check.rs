//! Static checks over the admission policies, before anything is
//! evaluated, so a hostile or mistaken policy fails the gate with a
//! message instead of passing or crashing:
//!
//! - **recursion**: OPA rejects recursive rules and functions at compile
//!   time; regorus evaluates a recursive function until the thread's stack
//!   overflows, which aborts the whole process (the daemon, every env).
//!   The rule graph is built from regorus's AST and any cycle is an error.
//! - **rules the gate would not evaluate**: a `deny`/`violation`/`warn`
//!   rule (conftest's prefixes included) outside the evaluated namespaces
//!   is an error naming file, line and rule — a gate never passes a policy
//!   it did not evaluate.
//! - **rules the gate cannot classify**: in an evaluated package every rule
//!   is a decision rule, conftest's `exception`, or a helper some rule uses.
//!   Anything else (`denyAll`, `Deny_x`, `deny-ish` functions, an unused
//!   rule that was meant to deny) is an error naming file, line and rule,
//!   never silently skipped; and a namespace set with no decision rule at
//!   all is an error too (it would pass anything).
//!
//! Written here because no crate analyses Rego for us: regorus exposes its
//! AST as JSON (feature `ast`), which this walks.

use std::collections::{BTreeMap, BTreeSet};

/// The namespace the gate evaluates unless the env lists others
/// (conftest's default).
pub const PACKAGE: &str = "main";

/// The rule conftest reads exceptions from, in each evaluated package.
pub const EXCEPTION: &str = "exception";

/// Whether package `package` is evaluated for `namespaces`: conftest
/// evaluates a namespace and every package under it (`main`, `main.k8s`).
pub fn under_namespaces(package: &str, namespaces: &[String]) -> bool {
    namespaces.iter().any(|ns| {
        package == ns
            || package
                .strip_prefix(ns.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// conftest's exception key of a decision rule: `deny_foo` → `foo`,
/// `deny` → `` (an exception listing "" covers the bare rules).
pub fn exception_key(rule: &str) -> &str {
    ["deny", "violation", "warn"]
        .iter()
        .find_map(|p| {
            if rule == *p {
                Some("")
            } else {
                rule.strip_prefix(p).and_then(|r| r.strip_prefix('_'))
            }
        })
        .unwrap_or(rule)
}

/// What the static check learnt: the packages to evaluate and where each
/// of their rules is defined (for messages).
#[derive(Debug, Clone, Default)]
pub struct Classified {
    /// Evaluated packages that define at least one decision rule or an
    /// exception, sorted.
    pub packages: Vec<String>,
    /// `package.rule` → `file:line` of its first definition.
    pub places: BTreeMap<String, String>,
}

/// Whether `name` is a rule the gate acts on: `deny`, `violation`, `warn`,
/// or one of them with a `_suffix` (conftest's convention).
pub fn is_decision_rule(name: &str) -> bool {
    ["deny", "violation", "warn"].iter().any(|p| {
        name == *p
            || name
                .strip_prefix(p)
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|rest| {
                    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
    })
}

/// One rule definition as the AST shows it.
#[derive(Debug, Clone)]
struct RuleDef {
    /// `lib.k8s.f` (package + name).
    key: String,
    package: String,
    name: String,
    file: String,
    line: u64,
    /// A function (`f(x) := …`), which a query cannot read as a value.
    is_func: bool,
    /// A constant without a body (`policyID := "P1"`, metadata objects):
    /// data, never a decision.
    is_constant: bool,
    /// Everything the rule refers to, resolved to candidate rule keys.
    refs: BTreeSet<String>,
}

/// `x`, `data.lib.k8s.f` …: a reference as a dotted path.
fn dotted(expr: &serde_json::Value) -> Option<String> {
    if let Some(v) = expr.get("Var") {
        return v.get("value")?.as_str().map(str::to_string);
    }
    let r = expr.get("RefDot")?;
    let base = dotted(r.get("refr")?)?;
    let field = r
        .get("field")?
        .as_array()?
        .iter()
        .find_map(|f| f.as_str())?;
    Some(format!("{base}.{field}"))
}

/// Every reference (Var or RefDot chain) anywhere under `v`.
fn collect(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(d) = dotted(v) {
                out.insert(d);
            }
            for x in m.values() {
                collect(x, out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                collect(x, out);
            }
        }
        _ => {}
    }
}

fn text_of<'a>(contents: &'a str, span: &serde_json::Value) -> Option<&'a str> {
    let start = usize::try_from(span.get("start")?.as_u64()?).ok()?;
    let end = usize::try_from(span.get("end")?.as_u64()?).ok()?;
    contents.get(start..end)
}

/// The rules of every module in regorus's AST JSON.
fn rules(ast_json: &str) -> Result<Vec<RuleDef>, String> {
    let modules: serde_json::Value =
        serde_json::from_str(ast_json).map_err(|e| format!("policy AST: {e}"))?;
    let mut out = Vec::new();
    for m in modules.as_array().into_iter().flatten() {
        let file = m["source"]["file"].as_str().unwrap_or("?").to_string();
        let contents = m["source"]["contents"].as_str().unwrap_or("");
        let ast = &m["ast"];
        let package = dotted(&ast["package"]["refr"]).unwrap_or_default();
        // Import aliases: `import data.lib.k8s` → `k8s` means `lib.k8s`.
        let mut aliases = BTreeMap::new();
        for i in ast["imports"].as_array().into_iter().flatten() {
            let Some(path) = dotted(&i["refr"]) else {
                continue;
            };
            let Some(target) = path.strip_prefix("data.") else {
                continue;
            };
            let alias = i
                .get("as")
                .and_then(|s| text_of(contents, s))
                .map(str::to_string)
                .or_else(|| path.rsplit('.').next().map(str::to_string));
            if let Some(a) = alias {
                aliases.insert(a, target.to_string());
            }
        }
        for rule in ast["rules"].as_array().into_iter().flatten() {
            // The rule's own name (its head's `refr`) is not a use of it:
            // everything else in the rule is.
            let mut raw = BTreeSet::new();
            let is_func = rule
                .get("Spec")
                .is_some_and(|s| s["head"].get("Func").is_some());
            let is_constant = rule.get("Spec").is_some_and(|s| {
                s["head"]["Compr"]["assign"].is_object()
                    && s["bodies"].as_array().is_none_or(|b| b.is_empty())
            });
            let (spec, head_refr) = if let Some(s) = rule.get("Spec") {
                let head = ["Compr", "Set", "Func"]
                    .iter()
                    .find_map(|k| s["head"].get(k));
                for (k, v) in head.and_then(|h| h.as_object()).into_iter().flatten() {
                    if k != "refr" {
                        collect(v, &mut raw);
                    }
                }
                collect(&s["bodies"], &mut raw);
                (s, head.map(|h| &h["refr"]))
            } else if let Some(d) = rule.get("Default") {
                for (k, v) in d.as_object().into_iter().flatten() {
                    if k != "refr" {
                        collect(v, &mut raw);
                    }
                }
                (d, d.get("refr"))
            } else {
                continue;
            };
            let Some(name) = head_refr.and_then(dotted) else {
                continue;
            };
            let mut refs = BTreeSet::new();
            for r in raw {
                let resolved = if let Some(rest) = r.strip_prefix("data.") {
                    rest.to_string()
                } else {
                    let (first, rest) = r.split_once('.').unwrap_or((r.as_str(), ""));
                    match aliases.get(first) {
                        Some(target) if rest.is_empty() => target.clone(),
                        Some(target) => format!("{target}.{rest}"),
                        None => format!("{package}.{r}"),
                    }
                };
                refs.insert(resolved);
            }
            out.push(RuleDef {
                key: format!("{package}.{name}"),
                package: package.clone(),
                name,
                file: file.clone(),
                line: spec["span"]["line"].as_u64().unwrap_or(0),
                is_func,
                is_constant,
                refs,
            });
        }
    }
    Ok(out)
}

/// Why the policies cannot be evaluated safely or completely, as
/// `(file:line, message)`; otherwise what to evaluate.
pub fn check(ast_json: &str, namespaces: &[String]) -> Result<Classified, (String, String)> {
    let defs = rules(ast_json).map_err(|e| ("policies/admission".to_string(), e))?;
    let listed = namespaces.join(", ");
    let place = |d: &RuleDef| format!("{}:{}", d.file, d.line);
    for d in &defs {
        let evaluated = under_namespaces(&d.package, namespaces);
        if !evaluated && is_decision_rule(&d.name) {
            return Err((
                place(d),
                format!(
                    "rule {} is in package {}, which the admission gate does not evaluate (it evaluates {listed}); move it to an evaluated package, list the package in gates.admission_namespaces, or rename it if it is a helper",
                    d.name, d.package
                ),
            ));
        }
        if evaluated && d.is_func && (is_decision_rule(&d.name) || d.name == EXCEPTION) {
            return Err((
                place(d),
                format!(
                    "{} in package {} is a function; a decision rule or exception is a set (`{} contains msg if {{ … }}`) the gate can read",
                    d.name, d.package, d.name
                ),
            ));
        }
    }
    // The rule graph: a rule (all its definitions) → the rules it uses.
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let keys: BTreeSet<&str> = defs.iter().map(|d| d.key.as_str()).collect();
    for d in &defs {
        let e = edges.entry(d.key.as_str()).or_default();
        for r in &d.refs {
            // `f.x` may name rule `f` (a field of its value) as well.
            let mut p = r.as_str();
            loop {
                if let Some(k) = keys.get(p) {
                    e.insert(k);
                    break;
                }
                match p.rsplit_once('.') {
                    Some((head, _)) => p = head,
                    None => break,
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let first = defs.iter().find(|d| d.key == cycle[0]);
        let place = first
            .map(|d| format!("{}:{}", d.file, d.line))
            .unwrap_or_else(|| "policies/admission".into());
        return Err((
            place,
            format!(
                "recursion: {}; Rego does not allow a rule or function to depend on itself (OPA rejects it at compile time)",
                cycle.join(" → ")
            ),
        ));
    }
    // A rule of an evaluated package that nothing evaluates and nothing
    // uses cannot be classified: report it rather than skip it.
    let used: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(from, to)| to.iter().filter(move |t| *t != from).copied())
        .collect();
    let mut out = Classified::default();
    let mut packages = BTreeSet::new();
    for d in &defs {
        if !under_namespaces(&d.package, namespaces) {
            continue;
        }
        out.places.entry(d.key.clone()).or_insert_with(|| place(d));
        if is_decision_rule(&d.name) || d.name == EXCEPTION {
            packages.insert(d.package.clone());
        } else if is_test(&d.name) || d.is_func || d.is_constant {
            // Tests run by `conftest verify`, helpers, metadata constants.
        } else if !used.contains(d.key.as_str()) && looks_like_decision(&d.name) {
            return Err((
                place(d),
                format!(
                    "rule {} in package {} looks like a decision rule but is not one the gate (or conftest) evaluates, and no rule uses it: name it deny, violation or warn, optionally with a _suffix (deny_{}), or use it as a helper",
                    d.name,
                    d.package,
                    suffix_hint(&d.name)
                ),
            ));
        } else if !used.contains(d.key.as_str()) {
            return Err((
                place(d),
                format!(
                    "rule {} in package {} is not a decision rule (deny, violation, warn, with an optional _suffix), not an exception, and no rule uses it: the gate cannot tell what it is for; rename it to a decision rule, use it, or move it to a library package",
                    d.name, d.package
                ),
            ));
        }
    }
    if !defs
        .iter()
        .any(|d| under_namespaces(&d.package, namespaces) && is_decision_rule(&d.name))
    {
        return Err((
            "policies/admission".to_string(),
            format!(
                "no deny, violation or warn rule in the evaluated namespaces ({listed}): the gate would pass anything; check the package names or gates.admission_namespaces"
            ),
        ));
    }
    out.packages = packages.into_iter().collect();
    Ok(out)
}

/// OPA's test rules (`test_*`, `todo_test_*`), run by `conftest verify`.
fn is_test(name: &str) -> bool {
    name.starts_with("test_") || name.starts_with("todo_test_")
}

/// `denyAll`, `Deny_x`, `violations`, `warning_x`: a name that starts like a
/// decision rule without being one.
fn looks_like_decision(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["deny", "violation", "warn"]
        .iter()
        .any(|p| lower.starts_with(p))
}

fn suffix_hint(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let rest = ["violations", "violation", "warning", "warn", "deny"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .unwrap_or(&lower);
    let rest = rest.trim_start_matches(['_', '-']);
    if rest.is_empty() {
        "reason".to_string()
    } else {
        rest.to_string()
    }
}

/// A cycle in the graph, as the keys along it (first repeated at the end).
fn find_cycle<'a>(edges: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Option<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    // Iterative DFS: a hostile policy cannot overflow our stack either.
    for &start in edges.keys() {
        if marks.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(
            start,
            edges
                .get(start)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        )];
        marks.insert(start, Mark::Open);
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            match top.1.pop() {
                Some(next) => match marks.get(next) {
                    Some(Mark::Open) => {
                        let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[from..].iter().map(|(n, _)| *n).collect();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(next, Mark::Open);
                        let children = edges
                            .get(next)
                            .map(|s| s.iter().copied().collect())
                            .unwrap_or_default();
                        stack.push((next, children));
                    }
                },
                None => {
                    marks.insert(node, Mark::Done);
                    stack.pop();
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main() -> Vec<String> {
        vec![PACKAGE.to_string()]
    }

    fn ast(policies: &[(&str, &str)]) -> String {
        let mut e = regorus::Engine::new();
        for (f, t) in policies {
            e.add_policy(f.to_string(), t.to_string()).expect("parses");
        }
        e.get_ast_as_json().expect("ast")
    }

    #[test]
    fn decision_rules_follow_conftest_names() {
        for n in [
            "deny",
            "warn",
            "violation",
            "deny_everything",
            "warn_old_api",
            "deny_x1",
        ] {
            assert!(is_decision_rule(n), "{n}");
        }
        for n in [
            "denied",
            "deny_",
            "helper",
            "is_deny",
            "exception",
            "warning",
        ] {
            assert!(!is_decision_rule(n), "{n}");
        }
    }

    #[test]
    fn recursion_anywhere_is_refused_with_its_path() {
        let direct = ast(&[(
            "a.rego",
            "package main\nimport rego.v1\nf(x) := f(x)\ndeny contains \"x\" if f(1)\n",
        )]);
        let (place, msg) = check(&direct, &main()).expect_err("recursive");
        assert_eq!(place, "a.rego:3");
        assert!(msg.contains("main.f → main.f"), "{msg}");
        let mutual = ast(&[
            (
                "a.rego",
                "package main\nimport rego.v1\nimport data.lib.k8s\ndeny contains m if { m := k8s.g(input) }\n",
            ),
            (
                "b.rego",
                "package lib.k8s\nimport rego.v1\ng(x) := h(x)\nh(x) := data.lib.k8s.g(x)\n",
            ),
        ]);
        let (_, msg) = check(&mutual, &main()).expect_err("mutual");
        assert!(
            msg.contains("lib.k8s.g") && msg.contains("lib.k8s.h"),
            "{msg}"
        );
        let fine = ast(&[
            (
                "a.rego",
                "package main\nimport rego.v1\nimport data.lib.k8s\nis_dep if input.kind == \"Deployment\"\ndeny contains m if { is_dep; k8s.named(input); m := \"x\" }\n",
            ),
            (
                "b.rego",
                "package lib.k8s\nimport rego.v1\nnamed(x) if x.metadata.name\n",
            ),
        ]);
        assert!(check(&fine, &main()).is_ok());
    }

    #[test]
    fn decision_rules_outside_main_are_refused() {
        let other = ast(&[(
            "b.rego",
            "package lib\nimport rego.v1\ndeny_other contains \"x\" if true\n",
        )]);
        let (place, msg) = check(&other, &main()).expect_err("not evaluated");
        assert_eq!(place, "b.rego:3");
        assert!(
            msg.contains("deny_other") && msg.contains("package lib"),
            "{msg}"
        );
    }

    #[test]
    fn a_namespace_without_decision_rules_is_refused() {
        let only_helpers = ast(&[(
            "a.rego",
            "package main\nimport rego.v1\nlimit := 3\nbig(x) if x > limit\n",
        )]);
        let (place, msg) = check(&only_helpers, &main()).expect_err("passes anything");
        assert_eq!(place, "policies/admission");
        assert!(
            msg.contains("no deny, violation or warn rule") && msg.contains("main"),
            "{msg}"
        );
    }
}
