//! The webhook's signature check over any body and header: never a panic,
//! and a signature over one body never verifies another.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let header = String::from_utf8_lossy(header);
    let ok = platform_capstone::daemon::http::webhook_signature_ok(b"secret", body, Some(&header));
    if ok {
        // Then the same header must fail for any other body.
        let mut other = body.to_vec();
        other.push(b'x');
        assert!(!platform_capstone::daemon::http::webhook_signature_ok(
            b"secret",
            &other,
            Some(&header)
        ));
    }
});
