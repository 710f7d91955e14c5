//! Writes the seed corpus of every fuzz target (`fuzz/`) from the fixtures:
//! `cargo run --features fuzzing --example fuzz_seeds -- tests/fixtures fuzz/corpus`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(fixtures), Some(corpus)) = (args.next(), args.next()) else {
        return Err("usage: fuzz_seeds FIXTURES_DIR CORPUS_DIR".into());
    };
    khabar::fuzzing::write_seed_corpus(fixtures.as_ref(), corpus.as_ref())
}
