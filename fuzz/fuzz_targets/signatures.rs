//! The signature parsers: allowed_signers files, SSHSIG armour, cosign's
//! simple-signing payload and base64 signatures, PEM certificate chains.
//! Any input gives a value or an error, never a panic, and nothing
//! verifies that was not signed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(signers) = platform_capstone::signing::AllowedSigners::parse(&text) {
        assert!(
            signers
                .verify("git", b"message", &text, None)
                .is_err(),
            "a signers file is not a signature"
        );
    }
    let _ = platform_capstone::signing::AllowedSigners::default().verify("git", b"m", &text, None);
    let _ = platform_capstone::gates::signature::check_payload(data, "sha256:00");
    let _ = platform_capstone::gates::signature::decode_signature(&text);
    let _ = platform_capstone::gates::keyless::parse_certificates(&text);
});
