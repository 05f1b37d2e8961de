//! The one door YAML comes in through. Bounded: size, and (by
//! `serde_yaml`/libyaml) nesting depth and alias expansion. The renderer
//! adds document-count and structural limits here when it lands.

/// Largest YAML text accepted, whatever the reader's own limit.
pub const MAX_YAML_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("YAML is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Parse(#[from] serde_yaml::Error),
}

/// Deserializes one YAML document.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(YamlError::TooLarge {
            size: text.len(),
            limit: MAX_YAML_BYTES,
        });
    }
    Ok(serde_yaml::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 0..9u8 {
            let prev = (b'a' + i) as char;
            let next = (b'b' + i) as char;
            bomb.push_str(&format!("{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        assert!(from_str::<serde_yaml::Value>(&bomb).is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(from_str::<serde_yaml::Value>(&deep).is_err());
    }
}
