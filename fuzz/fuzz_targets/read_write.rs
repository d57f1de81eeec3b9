//! The reader must never panic or hang, and what the writer writes must be a fixed
//! point: `write(read(write(x))) == write(x)` for every `x` the reader accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = nbexec_format::read_slice(data) else {
        return;
    };
    let written = nbexec_format::write_to_vec(&first.notebook);
    let second = match nbexec_format::read_slice(&written) {
        Ok(read) => read,
        Err(e) => panic!(
            "nbexec cannot read what it wrote: {e}\n--- written ---\n{}",
            String::from_utf8_lossy(&written)
        ),
    };
    // Ids were added on the first read if missing; the written file has them all.
    assert!(
        !second
            .warnings
            .iter()
            .any(|w| matches!(w, nbexec_format::Warning::MissingIdsAdded { .. })),
        "re-reading what was written added ids: {:?}",
        second.warnings
    );
    let rewritten = nbexec_format::write_to_vec(&second.notebook);
    assert!(
        rewritten == written,
        "write(read(write(x))) != write(x)\n--- write(x) ---\n{}\n--- write(read(write(x))) ---\n{}",
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&rewritten)
    );
});
