//! A cosign private key, where the CLI and the daemon take one: an
//! unencrypted PKCS#8 PEM (`platform-capstone keygen --cosign`), or a key
//! encrypted by `cosign generate-key-pair`, whose password comes from
//! `COSIGN_PASSWORD` exactly as cosign reads it (an empty value is an
//! empty password). The decryption itself is the core's
//! (`gates::cosign::decrypt_key`); this is the environment edge.

use crate::gates::cosign;

/// The variable cosign reads an encrypted key's password from.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// Loads `pem`, decrypting it with `$COSIGN_PASSWORD` when cosign
/// encrypted it.
pub fn load(pem: &str) -> Result<p256::ecdsa::SigningKey, String> {
    if !cosign::is_encrypted_key(pem) {
        return cosign::load_signing_key(pem);
    }
    match std::env::var_os(PASSWORD_ENV) {
        Some(password) => {
            use std::os::unix::ffi::OsStrExt;
            cosign::decrypt_key(pem, password.as_bytes())
        }
        None => Err(format!(
            "a cosign-encrypted key: set {PASSWORD_ENV} to its password (as for cosign)"
        )),
    }
}
