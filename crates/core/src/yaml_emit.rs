//! The YAML printer behind [`crate::yaml::to_string`]: the layout
//! `kubectl kustomize` prints, byte for byte, so our output can be diffed
//! against kubectl's and against what is in git.
//!
//! kustomize prints through go-yaml v3, a port of libyaml's emitter; the
//! rules below are libyaml's scalar analysis (`yaml_emitter_analyze_scalar`,
//! `yaml_emitter_select_scalar_style`) plus go-yaml's choice to
//! double-quote any string a YAML 1.1 reader would take for a bool,
//! number, null or timestamp. Keys sorted, two-space indent, sequences not
//! indented under their key, long plain and quoted scalars folded past
//! column 80. Written by hand: yaml_serde's emitter quotes differently
//! (`'8080'`, unquoted `yes`) and does not fold.

use yaml_serde::Value;

const WIDTH: usize = 80;
const INDENT: usize = 2;

pub fn documents(docs: &[Value]) -> String {
    let mut e = Emitter {
        out: String::with_capacity(docs.len() * 512),
        column: 0,
    };
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            e.out.push_str("---\n");
        }
        e.node(d, 0, false);
        if !e.out.ends_with('\n') {
            e.newline();
        }
    }
    e.out
}

struct Emitter {
    out: String,
    column: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Analysis {
    block_plain: bool,
    single: bool,
    block: bool,
}

fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{85}')
        || ('\u{20}'..='\u{7E}').contains(&c)
        || ('\u{A0}'..='\u{D7FF}').contains(&c)
        || (('\u{E000}'..='\u{FFFD}').contains(&c) && c != '\u{FEFF}')
        || ('\u{10000}'..='\u{10FFFF}').contains(&c)
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c) || c == '\0',
    }
}

/// libyaml's `yaml_emitter_analyze_scalar`, block context.
fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    let (mut block_ind, mut special, mut line_breaks) = (false, false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_ind = true;
    }
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let followed_by_ws = is_blankz(next);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_ind = true,
                '?' | ':' if followed_by_ws => block_ind = true,
                '-' if followed_by_ws => block_ind = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_ind = true,
                '#' if preceded_by_ws => block_ind = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = is_blankz(Some(c));
    }
    let mut a = Analysis {
        block_plain: true,
        single: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single = false;
        a.block = false;
    }
    if line_breaks || block_ind {
        a.block_plain = false;
    }
    a
}

/// Whether go-yaml would read `s` as something other than a string, or
/// quotes it for YAML 1.1 readers (old bools, base-60 floats).
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y",
        "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
        ".nan", ".NaN", ".NAN",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let b = s.as_bytes();
    let digits = |t: &[u8]| !t.is_empty() && t.iter().all(|c| c.is_ascii_digit() || *c == b'_');
    let body = if matches!(b.first(), Some(b'-' | b'+')) {
        &b[1..]
    } else {
        b
    };
    // integers: decimal, 0x, 0o, 0b
    if digits(body) {
        return true;
    }
    for (prefix, ok) in [
        (
            &b"0x"[..],
            (|c: &u8| c.is_ascii_hexdigit() || *c == b'_') as fn(&u8) -> bool,
        ),
        (&b"0o"[..], |c: &u8| (b'0'..=b'7').contains(c) || *c == b'_'),
        (&b"0b"[..], |c: &u8| *c == b'0' || *c == b'1' || *c == b'_'),
    ] {
        if let Some(rest) = body.strip_prefix(prefix)
            && !rest.is_empty()
            && rest.iter().all(ok)
        {
            return true;
        }
    }
    // floats: 1., .5, 1.5, 1e3, 1.5e-3
    if is_float(body) {
        return true;
    }
    // base-60 (1:20) and timestamps (2001-12-14…)
    if is_base60(s) || is_timestamp(b) {
        return true;
    }
    false
}

fn is_float(b: &[u8]) -> bool {
    let (mant, exp) = match b.iter().position(|c| *c == b'e' || *c == b'E') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    let mut parts = mant.splitn(2, |c| *c == b'.');
    let int = parts.next().unwrap_or(&[]);
    let frac = parts.next();
    let ok_digits = |t: &[u8]| t.iter().all(|c| c.is_ascii_digit() || *c == b'_');
    let mant_ok = match frac {
        Some(f) => ok_digits(int) && ok_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && ok_digits(int) && exp.is_some(),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = if matches!(e.first(), Some(b'-' | b'+')) {
                &e[1..]
            } else {
                e
            };
            !e.is_empty() && e.iter().all(u8::is_ascii_digit)
        }
    };
    mant_ok && exp_ok
}

fn is_base60(s: &str) -> bool {
    // [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (main, _frac) = match s.split_once('.') {
        Some((m, f)) if f.bytes().all(|c| c.is_ascii_digit() || c == b'_') => (m, Some(f)),
        Some(_) => return false,
        None => (s, None),
    };
    let mut parts = main.split(':');
    let Some(first) = parts.next() else {
        return false;
    };
    if first.is_empty()
        || !first.as_bytes()[0].is_ascii_digit()
        || !first.bytes().all(|c| c.is_ascii_digit() || c == b'_')
    {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty()
        && rest.iter().all(|p| {
            let b = p.as_bytes();
            matches!(b.len(), 1 | 2)
                && b.iter().all(u8::is_ascii_digit)
                && (b.len() == 1 || b[0] <= b'5')
        })
}

fn is_timestamp(b: &[u8]) -> bool {
    // YYYY-M[M]-D[D] with an optional time part: go-yaml resolves these.
    let n = |t: &[u8]| !t.is_empty() && t.iter().all(u8::is_ascii_digit);
    if b.len() < 8 || !n(&b[..4]) || b[4] != b'-' {
        return false;
    }
    let rest = &b[5..];
    let Some(dash) = rest.iter().position(|c| *c == b'-') else {
        return false;
    };
    let (month, day) = (&rest[..dash], &rest[dash + 1..]);
    let day_len = day.iter().take_while(|c| c.is_ascii_digit()).count();
    n(month) && month.len() <= 2 && (1..=2).contains(&day_len) && {
        let tail = &day[day_len..];
        tail.is_empty() || matches!(tail[0], b'T' | b't' | b' ' | b'\t')
    }
}

impl Emitter {
    fn put(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn put_char(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn indent_to(&mut self, indent: usize) {
        self.newline();
        for _ in 0..indent {
            self.out.push(' ');
        }
        self.column = indent;
    }

    /// A node at `indent`; `inline` when the cursor already sits after
    /// "- " (a mapping's first key or a scalar continues on that line).
    fn node(&mut self, v: &Value, indent: usize, inline: bool) {
        match v {
            Value::Mapping(m) if m.is_empty() => self.put("{}"),
            Value::Sequence(s) if s.is_empty() => self.put("[]"),
            Value::Mapping(m) => {
                let mut entries: Vec<(String, &Value)> =
                    m.iter().map(|(k, v)| (key_text(k), v)).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                for (i, (k, val)) in entries.iter().enumerate() {
                    if i > 0 || !inline {
                        if self.column > 0 || !self.out.is_empty() && !self.out.ends_with('\n') {
                            self.indent_to(indent);
                        } else {
                            for _ in 0..indent {
                                self.out.push(' ');
                            }
                            self.column = indent;
                        }
                    }
                    self.scalar(k, indent + INDENT, true);
                    self.put_char(':');
                    match val {
                        Value::Mapping(c) if !c.is_empty() => {
                            self.node(val, indent + INDENT, false)
                        }
                        Value::Sequence(c) if !c.is_empty() => self.node(val, indent, false),
                        _ => {
                            self.put_char(' ');
                            self.node(val, indent + INDENT, true);
                        }
                    }
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 || !inline {
                        if self.column > 0 || !self.out.is_empty() && !self.out.ends_with('\n') {
                            self.indent_to(indent);
                        } else {
                            for _ in 0..indent {
                                self.out.push(' ');
                            }
                            self.column = indent;
                        }
                    }
                    self.put("- ");
                    self.node(item, indent + INDENT, true);
                }
            }
            Value::String(s) => self.scalar(s, indent, false),
            Value::Null => self.put("null"),
            Value::Bool(b) => self.put(if *b { "true" } else { "false" }),
            Value::Number(n) => self.put(&n.to_string()),
            Value::Tagged(t) => {
                let text = yaml_serde::to_string(&Value::Tagged(t.clone())).unwrap_or_default();
                self.put(text.trim_end());
            }
        }
    }

    /// A string scalar; `key` for mapping keys (no folding, no blocks).
    fn scalar(&mut self, s: &str, indent: usize, key: bool) {
        let a = analyze(s);
        let mut style = if resolves_to_non_string(s) {
            Style::Double
        } else if s.contains('\n') {
            Style::Literal
        } else {
            Style::Plain
        };
        if style == Style::Plain && !a.block_plain {
            style = Style::Single;
        }
        if style == Style::Single && !a.single {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block || key) {
            style = Style::Double;
        }
        let breaks = !key;
        match style {
            Style::Plain => self.plain(s, indent, breaks),
            Style::Single => self.single(s, indent, breaks),
            Style::Double => self.double(s, indent, breaks),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn plain(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if breaks && !spaces && self.column > WIDTH && chars.get(i + 1) != Some(&' ') {
                    self.indent_to(indent);
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                self.put_char(c);
                spaces = false;
            }
        }
    }

    fn single(&mut self, s: &str, indent: usize, breaks: bool) {
        self.put_char('\'');
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if breaks
                    && !spaces
                    && self.column > WIDTH
                    && i != 0
                    && i + 1 != chars.len()
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.indent_to(indent);
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put_char('\'');
                }
                self.put_char(c);
                spaces = false;
            }
        }
        self.put_char('\'');
    }

    fn double(&mut self, s: &str, indent: usize, breaks: bool) {
        self.put_char('"');
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                let esc = match c {
                    '\0' => "\\0".to_string(),
                    '\u{7}' => "\\a".to_string(),
                    '\u{8}' => "\\b".to_string(),
                    '\t' => "\\t".to_string(),
                    '\n' => "\\n".to_string(),
                    '\u{B}' => "\\v".to_string(),
                    '\u{C}' => "\\f".to_string(),
                    '\r' => "\\r".to_string(),
                    '\u{1B}' => "\\e".to_string(),
                    '"' => "\\\"".to_string(),
                    '\\' => "\\\\".to_string(),
                    '\u{85}' => "\\N".to_string(),
                    '\u{A0}' => "\\_".to_string(),
                    '\u{2028}' => "\\L".to_string(),
                    '\u{2029}' => "\\P".to_string(),
                    c if (c as u32) <= 0xFF => format!("\\x{:02X}", c as u32),
                    c if (c as u32) <= 0xFFFF => format!("\\u{:04X}", c as u32),
                    c => format!("\\U{:08X}", c as u32),
                };
                self.put(&esc);
                spaces = false;
            } else if c == ' ' {
                if breaks && !spaces && self.column > WIDTH && i != 0 && i + 1 != chars.len() {
                    self.indent_to(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put_char('\\');
                    }
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                self.put_char(c);
                spaces = false;
            }
        }
        self.put_char('"');
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.put_char('|');
        if s.starts_with(' ') || s.starts_with('\n') {
            self.put(&INDENT.to_string());
        }
        let trailing = s.len() - s.trim_end_matches('\n').len();
        match trailing {
            0 => self.put_char('-'),
            1 => {}
            _ => self.put_char('+'),
        }
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            self.newline();
            if !line.is_empty() {
                for _ in 0..indent {
                    self.out.push(' ');
                }
                self.column = indent;
                self.put(line);
            }
        }
        // A kept trailing empty line ends at column 0: its own line break
        // is written here, or the next key (which adds a break only after
        // text) would swallow it.
        if body.ends_with('\n') {
            self.out.push('\n');
        }
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        other => yaml_serde::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_go_yaml() {
        for (s, want) in [
            ("plain", "plain"),
            ("8080", "\"8080\""),
            ("yes", "\"yes\""),
            ("y", "\"y\""),
            ("", "\"\""),
            ("1e3", "\"1e3\""),
            (".5", "\".5\""),
            ("0x1F", "\"0x1F\""),
            ("1:20", "\"1:20\""),
            ("2026-01-02", "\"2026-01-02\""),
            ("a: b", "'a: b'"),
            ("- x", "'- x'"),
            ("?x", "?x"),
            ("x:", "'x:'"),
            ("it's", "it's"),
            ("*x", "'*x'"),
            ("a\tb", "\"a\\tb\""),
            ("a #b", "'a #b'"),
            ("http://x/?a=b", "http://x/?a=b"),
            ("v1.2.3", "v1.2.3"),
            ("1.2.3", "1.2.3"),
        ] {
            let got = documents(&[Value::String(s.into())]);
            assert_eq!(got.trim_end(), want, "{s:?}");
        }
    }
}
