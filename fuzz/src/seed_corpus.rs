//! Writes the seed corpus of every target from the fixtures: `seed_corpus FIXTURES CORPUS`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(fixtures), Some(corpus)) = (args.next(), args.next()) else {
        return Err("usage: seed_corpus FIXTURES_DIR CORPUS_DIR".into());
    };
    khabar::fuzzing::write_seed_corpus(fixtures.as_ref(), corpus.as_ref())
}
