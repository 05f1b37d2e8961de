//! What an env last ran well: the release the engine, drift and drills go
//! back to.

use serde::{Deserialize, Serialize};

/// An env's last good release: baked, with the SLO values it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastGood {
    pub release: String,
    pub commit: String,
    pub images: Vec<String>,
    pub version: String,
    /// SLO name → the value measured in the release's last healthy
    /// interval: what SLO drift compares against (regression).
    #[serde(default)]
    pub baseline: std::collections::BTreeMap<String, f64>,
    /// When it became the env's good release.
    #[serde(default)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// The good release before it: where SLO drift right after a release
    /// rolls back to. One level only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<LastGood>>,
}
