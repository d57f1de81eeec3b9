//! `-y YAML`, `-f FILE.yaml` and `-b BASE64_YAML` from arbitrary bytes: building,
//! preparing and rendering must never panic, and every Python literal must read back
//! as exactly its value (spec §2.1's hard rule).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use nbexec_params::ParameterSources;

fuzz_target!(|data: &[u8]| {
    // The bytes, base64-encoded, through `-b` (non-UTF-8 must be an error, not a panic).
    let mut sources = ParameterSources::new();
    sources.base64_yaml(common::base64(data));
    let from_base64 = sources.build();
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(from_base64.is_err(), "non-UTF-8 YAML was accepted");
        return;
    };
    let mut sources = ParameterSources::new();
    sources.yaml(text);
    let from_yaml = sources.build();
    // `-b` of the encoded text is the same document as `-y` of the text.
    match (&from_yaml, &from_base64) {
        (Ok((a, _)), Ok((b, _))) => assert!(
            format!("{a:?}") == format!("{b:?}"),
            "-y and -b disagree:\n{a:?}\n{b:?}"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("-y and -b disagree: {a:?} vs {b:?}"),
    }
    if let Ok((params, _)) = from_yaml {
        common::exercise(&params);
    }
    // The text itself as a `-b` argument (the decoder skips non-alphabet characters),
    // and as `-f` files.
    let mut sources = ParameterSources::new();
    sources.base64_yaml(text);
    if let Ok((params, _)) = sources.build() {
        common::exercise(&params);
    }
    let mut sources = ParameterSources::new();
    sources.file("params.yml", text).file("params.txt", text);
    let _ = sources.build();
});
