//! How long an outlet's own opening can be before its copy of a story is no longer linked to
//! the original: the seed article, and copies of it that open with the first `L` words of an
//! unrelated article as a paragraph of their own, for `L` from 0 to 100. Prints the similarity
//! of each copy to the original and whether it reaches the default threshold.
//!
//! ```sh
//! cargo run --release --locked --example stories_intro
//! ```

use khabar::stories::{BODY_WORDS, DEFAULT_THRESHOLD, Fingerprint};

#[path = "support/seed.rs"]
mod seed;

fn main() -> Result<(), String> {
    let other = include_str!("../tests/fixtures/stories/articles/ar-budget.other.txt");
    let (_, headline, paragraphs, _) =
        seed::split(include_str!("../tests/fixtures/seed-article-ar.txt"))?;
    let body = paragraphs.join("\n\n");
    // The unrelated article's words after its headline.
    let filler: Vec<&str> = other
        .split_once("\n\n")
        .map_or(other, |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let original = Fingerprint::of_article(headline, &body);
    println!("body words read: {BODY_WORDS}; default threshold: {DEFAULT_THRESHOLD}");
    for words in (0..=100).step_by(10) {
        let Some(opening) = filler.get(..words) else {
            return Err(format!(
                "the unrelated article has fewer than {words} words"
            ));
        };
        let copy = if words == 0 {
            body.clone()
        } else {
            format!("{}\n\n{body}", opening.join(" "))
        };
        let similarity = Fingerprint::of_article(headline, &copy).similarity(&original);
        let linked = if similarity >= DEFAULT_THRESHOLD {
            "linked"
        } else {
            "not linked"
        };
        println!("opening of {words:3} words: similarity {similarity:.2} ({linked})");
    }
    Ok(())
}
