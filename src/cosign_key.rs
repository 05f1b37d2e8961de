//! A cosign private key, where the CLI and the daemon take one: an
//! unencrypted PKCS#8 PEM (`platform-capstone keygen --cosign`), or a key
//! encrypted by `cosign generate-key-pair`, whose password comes from
//! `COSIGN_PASSWORD` exactly as cosign reads it (an empty value is an
//! empty password), else from the file `COSIGN_PASSWORD_FILE` names. The decryption itself is the core's
//! (`gates::cosign::decrypt_key`); this is the environment edge.

use crate::gates::cosign;

/// The variable cosign reads an encrypted key's password from.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";
/// A file holding the password (a systemd credential, a mounted Secret):
/// read when `COSIGN_PASSWORD` is unset.
pub const PASSWORD_FILE_ENV: &str = "COSIGN_PASSWORD_FILE";

/// Loads `pem`, decrypting it with `$COSIGN_PASSWORD` when cosign
/// encrypted it.
pub fn load(pem: &str) -> Result<p256::ecdsa::SigningKey, String> {
    if !cosign::is_encrypted_key(pem) {
        return cosign::load_signing_key(pem);
    }
    use std::os::unix::ffi::OsStrExt;
    if let Some(password) = std::env::var_os(PASSWORD_ENV) {
        return cosign::decrypt_key(pem, password.as_bytes());
    }
    if let Some(file) = std::env::var_os(PASSWORD_FILE_ENV) {
        let bytes = std::fs::read(&file).map_err(|e| {
            format!(
                "{PASSWORD_FILE_ENV}={}: {e}",
                std::path::Path::new(&file).display()
            )
        })?;
        // One trailing newline is the file's, not the password's.
        let password = bytes
            .strip_suffix(b"\n")
            .map(|b| b.strip_suffix(b"\r").unwrap_or(b))
            .unwrap_or(&bytes);
        return cosign::decrypt_key(pem, password);
    }
    Err(format!(
        "a cosign-encrypted key: set {PASSWORD_ENV} to its password (as for cosign), or {PASSWORD_FILE_ENV} to a file holding it"
    ))
}
