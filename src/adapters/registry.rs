//! OCI registry adapter over `oci-client`: manifests and blobs, with every
//! read capped (a registry is untrusted input too) and every blob checked
//! against its digest. Synchronous facade over a private current-thread
//! runtime, so the CLI and the gates stay synchronous.

use super::registry_auth::{Credential, Keychain};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use platform_capstone_core::model::oci::{Descriptor, Index, Manifest, described};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Largest manifest read (cosign signature manifests are a few KiB).
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
pub use platform_capstone_core::model::oci::{OCI_INDEX, OCI_MANIFEST, descriptor, sha256};

pub use crate::ports::RegistryError;

pub struct OciRegistry {
    client: Client,
    rt: tokio::runtime::Runtime,
    keychain: Keychain,
    /// Registries whose credentials were resolved and handed to the client.
    authed: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl OciRegistry {
    /// `plain_http`: registries reached without TLS (loopback test
    /// registries). Credentials come from the docker/podman auth file of
    /// this environment ([`Keychain::from_env`]).
    pub fn new(plain_http: &[String]) -> Result<Self, RegistryError> {
        Self::with_keychain(plain_http, Keychain::from_env())
    }

    /// As [`new`](Self::new), with credentials from `keychain`.
    pub fn with_keychain(plain_http: &[String], keychain: Keychain) -> Result<Self, RegistryError> {
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http.to_vec()),
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Unavailable {
                registry: "-".into(),
                message: format!("cannot start the I/O runtime: {e}"),
            })?;
        Ok(Self {
            client: Client::new(config),
            rt,
            keychain,
            authed: Default::default(),
        })
    }

    /// Resolves `r`'s registry credentials once and hands them to the
    /// client (which then authenticates every request to that registry,
    /// basic or token, as the registry asks).
    fn authenticate(&self, r: &Reference) -> Result<(), RegistryError> {
        let registry = r.resolve_registry().to_string();
        let mut authed = self.authed.lock().unwrap_or_else(|e| e.into_inner());
        if authed.contains(&registry) {
            return Ok(());
        }
        let credential =
            self.keychain
                .resolve(&registry)
                .map_err(|e| RegistryError::Credentials {
                    registry: registry.clone(),
                    message: e.to_string(),
                })?;
        let auth = match credential {
            Credential::Anonymous => RegistryAuth::Anonymous,
            Credential::Basic { username, password } => RegistryAuth::Basic(username, password),
            Credential::Token(t) => RegistryAuth::Bearer(t),
        };
        self.rt
            .block_on(self.client.store_auth_if_needed(&registry, &auth));
        authed.insert(registry);
        Ok(())
    }

    /// `s` parsed, with its registry's credentials in the client (the
    /// `RegistryAuth::Anonymous` passed to some client calls below only
    /// applies to a registry with no stored credentials: there are).
    fn target(&self, s: &str) -> Result<Reference, RegistryError> {
        let r = Self::parse(s)?;
        self.authenticate(&r)?;
        Ok(r)
    }

    fn parse(s: &str) -> Result<Reference, RegistryError> {
        Reference::try_from(s).map_err(|e| RegistryError::Reference {
            reference: s.to_string(),
            message: e.to_string(),
        })
    }

    /// The raw manifest (of `accept` types) at `reference`, capped;
    /// `None` when the registry says it does not exist.
    fn pull_raw(
        &self,
        reference: &str,
        accept: &str,
    ) -> Result<Option<(Vec<u8>, String)>, RegistryError> {
        let r = self.target(reference)?;
        let result = self.rt.block_on(self.client.pull_manifest_raw(
            &r,
            &RegistryAuth::Anonymous,
            &[accept],
        ));
        let (bytes, digest) = match result {
            Ok(x) => x,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(self.unavailable(&r, e)),
        };
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::Invalid {
                reference: reference.to_string(),
                message: format!(
                    "manifest is {} bytes, over the {MAX_MANIFEST_BYTES}-byte cap",
                    bytes.len()
                ),
            });
        }
        Ok(Some((bytes.to_vec(), digest)))
    }

    /// Uploads `body` as a manifest of `content_type` under `reference`;
    /// returns the digest the registry says it stored.
    fn push_raw(
        &self,
        reference: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<String, RegistryError> {
        let r = self.target(reference)?;
        let content_type = content_type.parse().map_err(|e| RegistryError::Invalid {
            reference: reference.to_string(),
            message: format!("{e}"),
        })?;
        self.rt
            .block_on(self.client.push_manifest_raw(&r, body, content_type))
            .map_err(|e| self.unavailable(&r, e))?;
        // The registry's own word on the digest of what it stored.
        self.rt
            .block_on(
                self.client
                    .fetch_manifest_digest(&r, &RegistryAuth::Anonymous),
            )
            .map_err(|e| self.unavailable(&r, e))
    }

    /// A failed call as a typed error: a refusal of the credentials (HTTP
    /// 401/403, which oci-client reports in words) says which credentials
    /// were used, by file, never their value.
    fn unavailable(&self, r: &Reference, e: impl std::fmt::Display) -> RegistryError {
        let message = e.to_string().replace('\n', " ");
        let lower = message.to_ascii_lowercase();
        if lower.contains("not authorized")
            || lower.contains("unauthorized")
            || lower.contains("authentication failure")
            || lower.contains("denied")
        {
            let used = match self.keychain.file() {
                Some(f) => format!("with the credentials {} gives for it", f.display()),
                None => "anonymously (no docker/podman auth file found)".to_string(),
            };
            return RegistryError::Credentials {
                registry: r.registry().to_string(),
                message: format!("it refused access {used}: {message}"),
            };
        }
        RegistryError::Unavailable {
            registry: r.registry().to_string(),
            message,
        }
    }
}

impl crate::ports::Registry for OciRegistry {
    /// The OCI image manifest at `reference` (`repo:tag` or `repo@digest`)
    /// and its digest; `None` when the registry says it does not exist.
    fn manifest(&self, reference: &str) -> Result<Option<(Manifest, String)>, RegistryError> {
        let Some((bytes, digest)) = self.pull_raw(reference, OCI_MANIFEST)? else {
            return Ok(None);
        };
        let m = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Invalid {
            reference: reference.to_string(),
            message: format!("not an OCI image manifest: {e}"),
        })?;
        Ok(Some((m, digest)))
    }

    /// A blob of `repo`, at most `cap` bytes, checked against `digest`.
    fn blob(&self, repo: &str, digest: &str, cap: usize) -> Result<Vec<u8>, RegistryError> {
        let r = self.target(repo)?;
        let mut out = Capped {
            buf: Vec::new(),
            cap,
        };
        let result = self
            .rt
            .block_on(self.client.pull_blob(&r, digest, &mut out));
        if out.buf.len() > cap {
            return Err(RegistryError::Invalid {
                reference: format!("{repo}@{digest}"),
                message: format!("blob is over the {cap}-byte cap"),
            });
        }
        result.map_err(|e| self.unavailable(&r, e))?;
        if sha256(&out.buf) != digest {
            return Err(RegistryError::Invalid {
                reference: format!("{repo}@{digest}"),
                message: "blob content does not match its digest".into(),
            });
        }
        Ok(out.buf)
    }

    /// Uploads a blob to `repo`; returns its digest.
    fn push_blob(&self, repo: &str, bytes: Vec<u8>) -> Result<String, RegistryError> {
        let r = self.target(repo)?;
        let digest = sha256(&bytes);
        self.rt
            .block_on(self.client.push_blob(&r, bytes, &digest))
            .map_err(|e| self.unavailable(&r, e))?;
        Ok(digest)
    }

    fn push_manifest(&self, reference: &str, manifest: &Manifest) -> Result<String, RegistryError> {
        // Plain JSON, not oci-client's OLPC canonical form: that writes
        // control characters (the newlines of a PEM certificate in a
        // keyless annotation) raw inside strings, which is not JSON and
        // which registries refuse.
        let body = serde_json::to_vec(manifest).map_err(|e| RegistryError::Invalid {
            reference: reference.to_string(),
            message: format!("manifest does not serialize: {e}"),
        })?;
        let content_type = manifest
            .media_type
            .as_deref()
            .unwrap_or(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE);
        self.push_raw(reference, body, content_type)
    }

    fn referrers(&self, repo: &str, digest: &str) -> Result<Option<Index>, RegistryError> {
        let reference = format!("{repo}@{digest}");
        let r = self.target(&reference)?;
        let result = self.rt.block_on(async {
            self.client
                .store_auth_if_needed(r.resolve_registry(), &RegistryAuth::Anonymous)
                .await;
            self.client.pull_referrers(&r, None).await
        });
        match result {
            // The registry has no referrers API: the caller reads the tag.
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.unavailable(&r, e)),
            Ok(index) => {
                // oci-client's index type, back to the registry's JSON and
                // into ours (which keeps artifactType and annotations).
                let json = serde_json::to_vec(&index).map_err(|e| RegistryError::Invalid {
                    reference: reference.clone(),
                    message: format!("referrers index does not serialize: {e}"),
                })?;
                if json.len() > MAX_MANIFEST_BYTES {
                    return Err(RegistryError::Invalid {
                        reference,
                        message: format!(
                            "referrers index is {} bytes, over the {MAX_MANIFEST_BYTES}-byte cap",
                            json.len()
                        ),
                    });
                }
                serde_json::from_slice(&json)
                    .map(Some)
                    .map_err(|e| RegistryError::Invalid {
                        reference,
                        message: format!("not an OCI image index: {e}"),
                    })
            }
        }
    }

    fn manifest_descriptor(&self, reference: &str) -> Result<Option<Descriptor>, RegistryError> {
        let Some((bytes, digest)) = self.pull_raw(reference, OCI_MANIFEST)? else {
            return Ok(None);
        };
        Ok(Some(described(&bytes, digest)))
    }

    fn index(&self, reference: &str) -> Result<Option<Index>, RegistryError> {
        let Some((bytes, _)) = self.pull_raw(reference, OCI_INDEX)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Invalid {
                reference: reference.to_string(),
                message: format!("not an OCI image index: {e}"),
            })
    }

    fn push_index(&self, reference: &str, index: &Index) -> Result<String, RegistryError> {
        let body = serde_json::to_vec(index).map_err(|e| RegistryError::Invalid {
            reference: reference.to_string(),
            message: format!("index does not serialize: {e}"),
        })?;
        self.push_raw(reference, body, OCI_INDEX)
    }
}

fn is_not_found(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::ImageManifestNotFoundError(_) => true,
        E::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                x.code,
                oci_client::errors::OciErrorCode::ManifestUnknown
                    | oci_client::errors::OciErrorCode::NameUnknown
            )
        }),
        other => other.to_string().contains("404"),
    }
}

/// An AsyncWrite that refuses to grow past `cap` bytes.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.buf.len() + data.len() > self.cap {
            let take = self.cap + 1 - self.buf.len().min(self.cap + 1);
            let take = take.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            return Poll::Ready(Err(std::io::Error::other("blob over its size cap")));
        }
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
