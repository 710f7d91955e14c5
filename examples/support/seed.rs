//! The seed article as the benchmark workload (`bench/run.sh`) reads it, for the examples that
//! measure stories on the same articles.

/// The seed article's text.
const SEED: &str = include_str!("../../tests/fixtures/seed-article-ar.txt");

/// The seed's headline and its ten body paragraphs: its blocks are the site name, the headline,
/// the view count, the ten paragraphs and the source line.
pub fn headline_and_paragraphs() -> Result<(&'static str, Vec<&'static str>), String> {
    let blocks: Vec<&'static str> = SEED
        .split("\n\n")
        .map(str::trim)
        .filter(|block| !block.is_empty())
        .collect();
    match (blocks.get(1), blocks.get(3..13)) {
        (Some(headline), Some(paragraphs)) => Ok((headline, paragraphs.to_vec())),
        _ => Err("the seed article has fewer blocks than the workload reads".into()),
    }
}
