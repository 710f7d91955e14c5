//! What story linking costs per article of the benchmark workload (`bench/run.sh` W1b: the
//! seed article's ten paragraphs rotated, its headline numbered), outside the server: the time
//! to fingerprint such an article, and the time to assign each of 20,000 of them, in order, to
//! an index that starts empty (every one but the first is a copy of an earlier one), with the
//! postings a lookup visits. Each is run several times; the fastest run is printed, since the
//! machine is shared and slower runs only measure the neighbours.
//!
//! ```sh
//! cargo run --release --locked --example stories_cost
//! ```

use std::time::Instant;

use khabar::{
    domain::{ArticleId, Timestamp},
    stories::{Fingerprint, StoryConfig, StoryIndex},
};

/// Articles of the workload (its N).
const ARTICLES: usize = 20_000;
/// Runs of each measurement.
const RUNS: usize = 7;

#[path = "support/seed.rs"]
mod seed;

fn main() -> Result<(), String> {
    let (_, headline, paragraphs, _) =
        seed::split(include_str!("../tests/fixtures/seed-article-ar.txt"))?;
    let articles: Vec<(String, String)> = (0..ARTICLES)
        .map(|i| {
            let mut body = paragraphs.to_vec();
            body.rotate_left(i % 10);
            (format!("{headline} #{i}"), body.join("\n\n"))
        })
        .collect();

    let mut fingerprint_us = f64::MAX;
    let mut fingerprints = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        fingerprints = articles
            .iter()
            .map(|(headline, body)| Fingerprint::of_article(headline, body))
            .collect();
        fingerprint_us = fingerprint_us.min(per_article_us(started));
    }
    let mut encode_us = f64::MAX;
    let mut bytes = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        bytes = fingerprints
            .iter()
            .map(|f| f.to_bytes().len())
            .sum::<usize>();
        encode_us = encode_us.min(per_article_us(started));
    }

    let mut assign_us = f64::MAX;
    let mut linked = 0;
    let mut visited = 0;
    for _ in 0..RUNS {
        let mut index = StoryIndex::new(StoryConfig::default());
        let started = Instant::now();
        linked = 0;
        for (i, fingerprint) in fingerprints.iter().enumerate() {
            let id = ArticleId::from_bytes((i as u128 + 1).to_be_bytes());
            let published = Timestamp::new(1_467_331_200 + i as i64, 0)
                .ok_or("the workload's timestamps are valid")?;
            let assignment = index.assign(id, published, fingerprint);
            linked += usize::from(assignment.duplicate_of.is_some());
        }
        assign_us = assign_us.min(per_article_us(started));
        visited = index.stats().postings_visited;
    }
    println!(
        "stories cost: fingerprint {fingerprint_us:.2} us, encoding {encode_us:.2} us ({} bytes), \
         assign {assign_us:.2} us ({linked} of {ARTICLES} linked, {:.1} postings visited) \
         per article, fastest of {RUNS} runs",
        bytes / ARTICLES,
        visited as f64 / ARTICLES as f64,
    );
    Ok(())
}

fn per_article_us(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e6 / ARTICLES as f64
}
