//! `-j JSON` (and `-f FILE.json`, `-p`, `-r`) from arbitrary bytes: building, preparing
//! (every Esri rendering, declared types) and rendering must never panic, and every
//! Python literal must read back as exactly its value (spec §2.1's hard rule).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use nbexec_params::ParameterSources;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = ParameterSources::new();
    sources.json(text);
    if let Ok((params, _)) = sources.build() {
        common::exercise(&params);
    }
    let mut sources = ParameterSources::new();
    sources.file("params.json", text);
    let _ = sources.build();
    // The same text as a `-p` value (papermill's coercion) and as a `-r` value: both
    // always build, whatever the text.
    let mut sources = ParameterSources::new();
    sources.param("p", text).raw("r", text);
    let (params, _) = sources
        .build()
        .unwrap_or_else(|e| panic!("-p/-r with valid names must build: {e}"));
    common::exercise(&params);
});
