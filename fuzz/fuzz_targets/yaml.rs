//! The one YAML door: any bytes in, a bounded parse or an error out, and
//! whatever parses prints again through the one printer. Never a panic, a
//! hang or an unbounded allocation (alias bombs, deep nesting).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(docs) = platform_capstone::yaml::documents("fuzz.yaml", text) {
        let _ = platform_capstone::yaml::to_string(&docs);
    }
});
