//! Image digests and the digest pins of an overlay.
//!
//! A pin is one entry of a kustomization's `images:` list. Promotions write
//! only these; `status` shows them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A content digest, `sha256:<64 lowercase hex>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an image digest: expected sha256: followed by 64 lowercase hex digits")]
pub struct DigestError {
    pub value: String,
}

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, without `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// `sha256:1a2b3c4d5e6f`, for tables.
    pub fn short(&self) -> &str {
        &self.0[..19]
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(DigestError {
                value: s.to_string(),
            })
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `images:` entry of a kustomization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagePin {
    /// The image name as written in the manifests.
    pub name: String,
    /// Replacement repository, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// Tag, when set (refused later by the admission gate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// Pinned digest, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

impl ImagePin {
    /// The repository the image resolves to.
    pub fn repository(&self) -> &str {
        self.new_name.as_deref().unwrap_or(&self.name)
    }

    /// `repo@sha256:…` when pinned by digest, else `repo:tag` / `repo`.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.new_tag) {
            (Some(d), _) => format!("{}@{d}", self.repository()),
            (None, Some(t)) => format!("{}:{t}", self.repository()),
            (None, None) => self.repository().to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{file}: not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}: images[{index}].{field}: {message}")]
    Field {
        file: String,
        index: usize,
        field: String,
        message: String,
    },
}

#[derive(Deserialize)]
struct KustomizationImages {
    #[serde(default)]
    images: Vec<RawImage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawImage {
    name: Option<String>,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

/// The `images:` pins of a kustomization file's text.
pub fn pins_from_kustomization(file: &str, text: &str) -> Result<Vec<ImagePin>, PinError> {
    let doc: KustomizationImages =
        crate::yaml::from_str(file, text).map_err(|e| PinError::Yaml {
            file: file.to_string(),
            message: e.to_string(),
        })?;
    doc.images
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let field_err = |field: &str, message: String| PinError::Field {
                file: file.to_string(),
                index,
                field: field.to_string(),
                message,
            };
            let name = raw
                .name
                .filter(|n| !n.is_empty())
                .ok_or_else(|| field_err("name", "missing".into()))?;
            let digest = raw
                .digest
                .map(|d| d.parse::<Digest>())
                .transpose()
                .map_err(|e| field_err("digest", e.to_string()))?;
            Ok(ImagePin {
                name,
                new_name: raw.new_name,
                new_tag: raw.new_tag,
                digest,
            })
        })
        .collect()
}

/// Rewrites the `digest:` of each named image in a kustomization's text,
/// touching nothing else (comments, order and layout stay), and checks the
/// result: the same document with only those digests changed. An image
/// not pinned by digest yet, or not listed, is an error: promotions move
/// pins, they do not invent them.
pub fn set_digest_pins(
    file: &str,
    text: &str,
    digests: &std::collections::BTreeMap<String, Digest>,
) -> Result<String, PinError> {
    let err = |index: usize, message: String| PinError::Field {
        file: file.to_string(),
        index,
        field: "digest".into(),
        message,
    };
    let before = pins_from_kustomization(file, text)?;
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let mut in_images = false;
    let mut current: Option<(usize, String)> = None; // (entry index, name)
    let mut entry = 0usize;
    let mut entry_indent = 0usize;
    let mut done = std::collections::BTreeSet::new();
    for line in lines.iter_mut() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_images = trimmed.starts_with("images:");
            current = None;
            continue;
        }
        if !in_images {
            continue;
        }
        let field = if let Some(rest) = trimmed.strip_prefix("- ") {
            entry_indent = indent + 2;
            if before.len() <= entry {
                return Err(err(entry, "could not follow the images list".into()));
            }
            current = Some((entry, before[entry].name.clone()));
            entry += 1;
            rest
        } else if indent == entry_indent {
            trimmed
        } else {
            continue;
        };
        if let (Some((index, name)), Some(value)) = (&current, field.strip_prefix("digest:"))
            && let Some(d) = digests.get(name)
        {
            let v = value.trim_start();
            let token = v
                .find(|c: char| c.is_whitespace() || c == '#')
                .unwrap_or(v.len());
            let start = line.len() - field.len() + "digest:".len();
            let end_of_value = start + (value.len() - v.len()) + token;
            line.replace_range(start..end_of_value, &format!(" {d}"));
            done.insert(name.clone());
            debug_assert!(*index < entry);
        }
    }
    for name in digests.keys() {
        if !done.contains(name) {
            let index = before
                .iter()
                .position(|p| &p.name == name)
                .unwrap_or(before.len());
            return Err(err(
                index,
                format!(
                    "image {name:?} has no digest pin to move in {file}; pin it by digest first"
                ),
            ));
        }
    }
    let out: String = lines.concat();
    // Same document, only those digests changed.
    let after = pins_from_kustomization(file, &out)?;
    let expected: Vec<ImagePin> = before
        .into_iter()
        .map(|mut p| {
            if let Some(d) = digests.get(&p.name) {
                p.digest = Some(d.clone());
            }
            p
        })
        .collect();
    let strip = |t: &str| -> Result<yaml_serde::Value, PinError> {
        let mut v: yaml_serde::Value =
            crate::yaml::from_str(file, t).map_err(|e| PinError::Yaml {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        if let Some(m) = v.as_mapping_mut() {
            m.remove("images");
        }
        Ok(v)
    };
    if after != expected || strip(text)? != strip(&out)? {
        return Err(err(
            0,
            "rewriting the pins would change more than the digests; edit this file by hand".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn digests_parse_strictly() {
        assert!(D.parse::<Digest>().is_ok());
        for bad in [
            "",
            "sha256:",
            "sha256:ABC",
            &D.to_uppercase(),
            &D[..70],
            "md5:0123",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
        assert_eq!(D.parse::<Digest>().unwrap().short(), "sha256:0123456789ab");
    }

    #[test]
    fn pins_are_read_from_images() {
        let text = format!(
            "images:\n- name: demo\n  newName: reg/demo\n  digest: {D}\n- name: side\n  newTag: v1\n"
        );
        let pins = pins_from_kustomization("k.yaml", &text).unwrap();
        assert_eq!(pins.len(), 2);
        assert_eq!(pins[0].reference(), format!("reg/demo@{D}"));
        assert_eq!(pins[1].reference(), "side:v1");
    }

    #[test]
    fn pins_move_and_nothing_else_does() {
        let e = D.replace("0123", "ffff");
        let text = format!(
            "# comment\nnamespace: x\nimages:\n  # the app\n  - name: demo\n    newName: reg/demo\n    digest: {D}   # pinned\n  - digest: {D}\n    name: side\nreplicas:\n  - name: demo\n    count: 1\n"
        );
        let to: std::collections::BTreeMap<String, Digest> =
            [("demo".to_string(), e.parse().unwrap())].into();
        let out = set_digest_pins("k.yaml", &text, &to).unwrap();
        assert_eq!(
            out,
            text.replacen(&format!("digest: {D}   #"), &format!("digest: {e}   #"), 1)
        );
        let both: std::collections::BTreeMap<String, Digest> = [
            ("demo".to_string(), e.parse().unwrap()),
            ("side".to_string(), e.parse().unwrap()),
        ]
        .into();
        let out = set_digest_pins("k.yaml", &text, &both).unwrap();
        assert_eq!(out.matches(&e).count(), 2);
        assert_eq!(out.matches(D).count(), 0);
        let missing: std::collections::BTreeMap<String, Digest> =
            [("other".to_string(), e.parse().unwrap())].into();
        assert!(
            set_digest_pins("k.yaml", &text, &missing)
                .unwrap_err()
                .to_string()
                .contains("no digest pin")
        );
        let tagged = "images:\n- name: demo\n  newTag: v1\n";
        let demo: std::collections::BTreeMap<String, Digest> =
            [("demo".to_string(), e.parse().unwrap())].into();
        assert!(set_digest_pins("k.yaml", tagged, &demo).is_err());
        let bad = pins_from_kustomization("k.yaml", "images:\n- name: x\n  digest: sha256:nope\n");
        let msg = bad.unwrap_err().to_string();
        assert!(msg.starts_with("k.yaml: images[0].digest:"), "{msg}");
    }
}
