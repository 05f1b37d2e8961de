//! Kubernetes manifests read the way kustomize reads them: go-yaml v3's
//! resolution of plain scalars, then a JSON round trip.
//!
//! `yaml_serde` follows YAML 1.2, where a plain `0755` is the string
//! "0755"; go-yaml reads it as the octal integer 493 (`defaultMode: 0755`
//! in every Argo CD HA install), `08` as the float 8, `1_000` as 1000.
//! kustomize then prints each object through JSON, so a float with no
//! fraction comes out as an integer (`1.0` → `1`, `1e3` → `1000`).
//!
//! Only *plain* scalars resolve: a quoted `"0755"` stays a string. The
//! deserializer does not say which style a string had, so the loader asks
//! where the borrowed text sits in the input: a quoted scalar's text starts
//! right after its quote, a plain one's never does. A string that is not
//! borrowed (escapes, folding, block scalars) is never a plain number.
//!
//! Written by hand: no crate reads YAML with go-yaml's number rules.

use serde::de::{DeserializeSeed, EnumAccess, MapAccess, SeqAccess, Visitor};
use std::fmt;
use yaml_serde::{Mapping, Number, Value};

/// A seed that builds a [`Value`] borrowing from `text` (see the module doc).
#[derive(Clone, Copy)]
pub struct GoValue<'t> {
    pub text: &'t str,
}

impl<'de> DeserializeSeed<'de> for GoValue<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl GoValue<'_> {
    /// Whether `s` is a plain scalar of the input (not quoted, not built).
    fn is_plain(&self, s: &str) -> bool {
        let (start, end) = (self.text.as_ptr() as usize, self.text.len());
        let at = (s.as_ptr() as usize).wrapping_sub(start);
        if s.is_empty() || at >= end || at + s.len() > end {
            return false;
        }
        !(at > 0 && matches!(self.text.as_bytes()[at - 1], b'"' | b'\''))
    }
}

impl<'de> Visitor<'de> for GoValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        // Beyond 64 bits go-yaml reads a float, and JSON prints it so.
        Ok(json_float(v as f64))
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(json_float(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(json_float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value, E> {
        if self.is_plain(v)
            && let Some(n) = go_number(v)
        {
            return Ok(n);
        }
        Ok(Value::String(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Sequence(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Mapping::new();
        // Keys stay as YAML 1.2 reads them (JSON keys are strings anyway).
        while let Some(k) = map.next_key::<Value>()? {
            let v = map.next_value_seed(self)?;
            if out.insert(k.clone(), v).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "duplicate mapping key {}",
                    yaml_serde::to_string(&k).unwrap_or_default().trim_end()
                )));
            }
        }
        Ok(Value::Mapping(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // A custom tag (`!foo x`): kept as the YAML 1.2 reader keeps it.
        serde::Deserialize::deserialize(serde::de::value::EnumAccessDeserializer::new(data))
    }
}

/// A float as kustomize prints it after its JSON round trip: without a
/// fraction (and within 64 bits) it is an integer.
fn json_float(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 {
        if f >= i64::MIN as f64 && f < i64::MAX as f64 {
            return Value::Number((f as i64).into());
        }
        if f >= 0.0 && f < u64::MAX as f64 {
            return Value::Number((f as u64).into());
        }
    }
    Value::Number(Number::from(f))
}

/// go-yaml v3's number for a plain scalar the YAML 1.2 reader left a
/// string: Go integer syntax with base prefixes, a leading `0` for octal
/// and `_` between digits; else its float syntax (`08` → 8).
pub fn go_number(s: &str) -> Option<Value> {
    if let Some(i) = go_int(s) {
        return Some(Value::Number(i.into()));
    }
    if is_go_float(s) {
        return s.parse::<f64>().ok().map(json_float);
    }
    None
}

fn go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(r) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, r)
        } else if let Some(r) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, r)
        } else if let Some(r) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, r)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    // Go allows `_` only between digits (or right after a base prefix).
    if digits.is_empty() || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    if digits.starts_with('_') && radix == 10 {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let magnitude = u64::from_str_radix(&clean, radix).ok()?;
    if neg {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// go-yaml's float syntax: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_go_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - from
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Value {
        let d = yaml_serde::Deserializer::from_str(text);
        GoValue { text }.deserialize(d).expect("yaml")
    }

    #[test]
    fn plain_scalars_resolve_as_go_yaml_does_and_quoted_ones_stay_strings() {
        let v = load(
            "a: 0755\nb: 08\nc: 1_000\nd: -0755\ne: 012345678\nf: 1.0\ng: 1e3\nh: 0.5\n\
             i: \"0755\"\nj: '08'\nk: 00\nl: 0x1F\nm: 1:20\nn: yes\no: [0644, \"0644\"]\np: 1.50\n",
        );
        let m = v.as_mapping().expect("map");
        let get = |k: &str| m.get(k).cloned().expect(k);
        assert_eq!(get("a"), Value::Number(493.into()));
        assert_eq!(get("b"), Value::Number(8.into()));
        assert_eq!(get("c"), Value::Number(1000.into()));
        assert_eq!(get("d"), Value::Number((-493).into()));
        assert_eq!(get("e"), Value::Number(12345678.into()));
        assert_eq!(get("f"), Value::Number(1.into()));
        assert_eq!(get("g"), Value::Number(1000.into()));
        assert_eq!(get("h"), Value::Number(Number::from(0.5)));
        assert_eq!(get("i"), Value::String("0755".into()));
        assert_eq!(get("j"), Value::String("08".into()));
        assert_eq!(get("k"), Value::Number(0.into()));
        assert_eq!(get("l"), Value::Number(31.into()));
        assert_eq!(get("m"), Value::String("1:20".into()));
        assert_eq!(get("n"), Value::String("yes".into()));
        assert_eq!(
            get("o"),
            Value::Sequence(vec![
                Value::Number(420.into()),
                Value::String("0644".into())
            ])
        );
        assert_eq!(get("p"), Value::Number(Number::from(1.5)));
    }

    #[test]
    fn go_integer_syntax_edges() {
        assert_eq!(go_int("1__0"), None);
        assert_eq!(go_int("10_"), None);
        assert_eq!(go_int("_10"), None);
        assert_eq!(go_int("0x_1F"), Some(31));
        assert_eq!(go_int("09"), None);
        assert!(is_go_float("09") && is_go_float(".5") && is_go_float("1.") && !is_go_float("1e"));
    }
}
