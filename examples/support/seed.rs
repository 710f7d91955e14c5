//! The seed article split as the benchmark workload describes it, for the benchmark and for the
//! examples that measure stories on the same articles.

/// The seed's site name, headline, ten body paragraphs and origin (the name its closing
/// "المصدر: <origin>" line gives): its blocks are the site name, the headline, the view count,
/// the paragraphs and that line.
pub fn split(text: &str) -> Result<(&str, &str, Vec<&str>, &str), String> {
    let blocks: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|block| !block.is_empty())
        .collect();
    let [site, headline, _views, body @ .., source] = blocks.as_slice() else {
        return Err("seed text is too short".into());
    };
    if body.len() != 10 {
        return Err(format!(
            "seed text has {} body paragraphs, expected 10",
            body.len()
        ));
    }
    let origin = source
        .split_once(':')
        .map_or(*source, |(_, name)| name)
        .trim();
    Ok((site, headline, body.to_vec(), origin))
}
