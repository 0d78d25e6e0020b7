//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry points
//! the `cargo fuzz` targets call, so every input a fuzzer ever kept, and every crash it found
//! (kept as a seed once fixed), stays a test on the stable toolchain.

use std::path::Path;

use chaos_inference::fuzzing::TARGETS;

#[test]
fn every_corpus_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, run) in TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(
            inputs.len() >= 5,
            "{name}: the corpus holds only {} inputs",
            inputs.len()
        );
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                panic!("{name}: {} makes it panic", input.display());
            }
        }
    }
}
