//! The labeled pairs of `tests/fixtures/stories/`, a synthetic background of unrelated
//! articles, and the evaluation of story assignment on them. Shared by the `stories` test and
//! the `stories_eval` example.

#![allow(dead_code)]

use std::{collections::BTreeMap, fs, path::PathBuf, time::Duration};

use khabar::{
    domain::{ArticleId, Timestamp},
    stories::{Fingerprint, StoryConfig, StoryIndex},
};
use serde_json::Value;
use ulid::Ulid;

/// One labeled pair.
#[derive(Debug, Clone)]
pub struct Pair {
    pub a: String,
    pub b: String,
    pub same_story: bool,
    pub kind: String,
    pub lang: String,
    pub group: String,
    pub held_out: bool,
}

/// An article of the set: headline and body.
#[derive(Debug, Clone)]
pub struct Text {
    pub headline: String,
    pub body: String,
}

/// The labeled set.
pub struct LabeledSet {
    pub pairs: Vec<Pair>,
    pub texts: BTreeMap<String, Text>,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stories")
}

/// Reads `pairs.jsonl` and every article it names.
pub fn load() -> LabeledSet {
    let dir = fixtures();
    let lines = fs::read_to_string(dir.join("pairs.jsonl")).expect("pairs.jsonl is readable");
    let mut pairs = Vec::new();
    let mut texts = BTreeMap::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("each line is JSON");
        let field = |name: &str| {
            v[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {line}"))
                .to_owned()
        };
        let pair = Pair {
            a: field("a"),
            b: field("b"),
            same_story: v["same_story"].as_bool().expect("same_story is a boolean"),
            kind: field("kind"),
            lang: field("lang"),
            group: field("group"),
            held_out: match field("split").as_str() {
                "tune" => false,
                "held-out" => true,
                other => panic!("unknown split {other}"),
            },
        };
        for name in [&pair.a, &pair.b] {
            if !texts.contains_key(name) {
                let raw = fs::read_to_string(dir.join("articles").join(format!("{name}.txt")))
                    .unwrap_or_else(|e| panic!("article {name}: {e}"));
                let (headline, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
                texts.insert(
                    name.clone(),
                    Text {
                        headline: headline.trim().to_owned(),
                        body: body.trim().to_owned(),
                    },
                );
            }
        }
        pairs.push(pair);
    }
    LabeledSet { pairs, texts }
}

impl LabeledSet {
    /// The fingerprint of a named article.
    pub fn fingerprint(&self, name: &str) -> Fingerprint {
        let text = &self.texts[name];
        Fingerprint::of_article(&text.headline, &text.body)
    }
}

/// SplitMix64: a deterministic generator for the background.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Writes unrelated articles in the words of the labeled set: each word follows the previous
/// one as it does somewhere in the set half of the time, and is drawn from all the set's words
/// otherwise, so the background shares stock phrases with the set (and with itself) without
/// repeating its sentences.
pub struct Background {
    words: Vec<String>,
    followers: BTreeMap<usize, Vec<usize>>,
    rng: Rng,
}

impl Background {
    pub fn new(set: &LabeledSet, lang: &str, seed: u64) -> Self {
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut words = Vec::new();
        let mut followers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (name, text) in &set.texts {
            if !name.starts_with(lang) {
                continue;
            }
            let mut previous = None;
            for word in format!("{} {}", text.headline, text.body).split_whitespace() {
                let id = *index.entry(word.to_owned()).or_insert_with(|| {
                    words.push(word.to_owned());
                    words.len() - 1
                });
                if let Some(p) = previous {
                    followers.entry(p).or_default().push(id);
                }
                previous = Some(id);
            }
        }
        Self {
            words,
            followers,
            rng: Rng(seed),
        }
    }

    /// An article of about `words` words in paragraphs of about 40.
    pub fn article(&mut self, words: usize) -> Text {
        let mut current = self.rng.below(self.words.len());
        let mut headline = Vec::new();
        let mut body = String::new();
        for i in 0..words + 10 {
            let next = match self.followers.get(&current) {
                Some(f) if self.rng.below(2) == 0 => f[self.rng.below(f.len())],
                _ => self.rng.below(self.words.len()),
            };
            current = next;
            let word = &self.words[current];
            if i < 10 {
                headline.push(word.as_str());
            } else {
                if i > 10 {
                    body.push_str(if (i - 10) % 40 == 0 { "\n\n" } else { " " });
                }
                body.push_str(word);
            }
        }
        Text {
            headline: headline.join(" "),
            body,
        }
    }
}

/// Seconds of the moment the pairs are published at; the background is published in the six
/// days before it.
pub const T0: i64 = 1_700_000_000;

/// An id for the `n`th article, in creation order.
pub fn article_id(n: u64) -> ArticleId {
    ArticleId::from_ulid(Ulid(u128::from(n) << 16 | 0xABCD))
}

/// An index holding `count` background articles (seed-sized, about 70% Arabic) published over
/// the six days before [`T0`]; returns it with the next free article number.
pub fn background_index(set: &LabeledSet, config: StoryConfig, count: usize) -> (StoryIndex, u64) {
    let mut arabic = Background::new(set, "ar", 1);
    let mut english = Background::new(set, "en", 2);
    let mut index = StoryIndex::new(config);
    let span = 6 * 24 * 60 * 60;
    for n in 0..count {
        let text = if n % 10 < 7 {
            arabic.article(380)
        } else {
            english.article(300)
        };
        let fingerprint = Fingerprint::of_article(&text.headline, &text.body);
        let at = Timestamp::new(T0 - span + (n as i64 * span) / count.max(1) as i64, 0)
            .expect("in range");
        index.assign(article_id(n as u64), at, &fingerprint);
    }
    (index, count as u64)
}

/// Precision, recall and their details for a set of pairs.
#[derive(Debug, Default, Clone)]
pub struct Scores {
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub true_negatives: usize,
    /// Per kind: (pairs, correct).
    pub by_kind: BTreeMap<String, (usize, usize)>,
    /// The pairs decided wrongly, with their similarity.
    pub mistakes: Vec<(Pair, f32)>,
}

impl Scores {
    fn record(&mut self, pair: &Pair, predicted: bool, similarity: f32) {
        match (pair.same_story, predicted) {
            (true, true) => self.true_positives += 1,
            (false, true) => self.false_positives += 1,
            (true, false) => self.false_negatives += 1,
            (false, false) => self.true_negatives += 1,
        }
        let entry = self.by_kind.entry(pair.kind.clone()).or_default();
        entry.0 += 1;
        if predicted == pair.same_story {
            entry.1 += 1;
        } else {
            self.mistakes.push((pair.clone(), similarity));
        }
    }

    pub fn pairs(&self) -> usize {
        self.true_positives + self.false_positives + self.false_negatives + self.true_negatives
    }

    pub fn precision(&self) -> f64 {
        let predicted = self.true_positives + self.false_positives;
        if predicted == 0 {
            1.0
        } else {
            self.true_positives as f64 / predicted as f64
        }
    }

    pub fn recall(&self) -> f64 {
        let actual = self.true_positives + self.false_negatives;
        if actual == 0 {
            1.0
        } else {
            self.true_positives as f64 / actual as f64
        }
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Recall on the pairs of one kind.
    pub fn kind_accuracy(&self, kind: &str) -> Option<f64> {
        self.by_kind.get(kind).map(|(n, ok)| *ok as f64 / *n as f64)
    }
}

/// Assigns each pair through `index`: `a` then, an hour later, `b`; the pair is predicted to be
/// one story when `b` lands in `a`'s story. Both are removed afterwards, so every pair meets the
/// same index.
pub fn evaluate(
    set: &LabeledSet,
    pairs: &[&Pair],
    index: &mut StoryIndex,
    next_id: &mut u64,
) -> Scores {
    let mut scores = Scores::default();
    let t0 = Timestamp::new(T0, 0).expect("in range");
    let t1 = Timestamp::new(T0 + 3600, 0).expect("in range");
    for pair in pairs {
        let (a, b) = (set.fingerprint(&pair.a), set.fingerprint(&pair.b));
        let (id_a, id_b) = (article_id(*next_id), article_id(*next_id + 1));
        *next_id += 2;
        let first = index.assign(id_a, t0, &a);
        let second = index.assign(id_b, t1, &b);
        index.remove(id_a);
        index.remove(id_b);
        let predicted = second.story_id == first.story_id;
        scores.record(pair, predicted, a.similarity(&b));
    }
    scores
}

/// Decides each pair by its similarity alone, at `threshold`.
pub fn score_at(pairs: &[(&Pair, f32)], threshold: f32) -> Scores {
    let mut scores = Scores::default();
    for (pair, similarity) in pairs {
        scores.record(pair, *similarity >= threshold, *similarity);
    }
    scores
}

/// The thresholds (on a 0.01 grid) with the best F1 on `pairs`: the plateau of best F1 and its
/// middle, the threshold chosen.
pub fn tune(pairs: &[(&Pair, f32)]) -> (f32, f32, f32) {
    let grid: Vec<f32> = (5..=99).map(|c| c as f32 / 100.0).collect();
    let f1s: Vec<f64> = grid.iter().map(|t| score_at(pairs, *t).f1()).collect();
    let best = f1s.iter().copied().fold(f64::MIN, f64::max);
    let on_plateau: Vec<f32> = grid
        .iter()
        .zip(&f1s)
        .filter(|(_, f)| **f >= best - 1e-12)
        .map(|(t, _)| *t)
        .collect();
    let (low, _high) = (on_plateau[0], on_plateau[on_plateau.len() - 1]);
    // The middle of the widest run of best thresholds, on the grid.
    let mut runs: Vec<(f32, f32)> = Vec::new();
    for t in &on_plateau {
        match runs.last_mut() {
            Some((_, end)) if (*t - *end - 0.01).abs() < 1e-4 => *end = *t,
            _ => runs.push((*t, *t)),
        }
    }
    let (start, end) = runs.iter().copied().fold((low, low), |best, run| {
        if run.1 - run.0 > best.1 - best.0 {
            run
        } else {
            best
        }
    });
    let middle = ((start + end) / 2.0 * 100.0).round() / 100.0;
    (start, end, middle)
}

/// The one-line report.
pub fn report_line(scores: &Scores, us_per_article: Option<f64>) -> String {
    format!(
        "stories: precision={:.3} recall={:.3} f1={:.3} pairs={} us-per-article={}",
        scores.precision(),
        scores.recall(),
        scores.f1(),
        scores.pairs(),
        us_per_article.map_or_else(|| "n/a".to_owned(), |t| format!("{t:.1}")),
    )
}

/// The default configuration with another threshold.
pub fn config_with(threshold: f32) -> StoryConfig {
    StoryConfig {
        window: Duration::from_secs(7 * 24 * 3600),
        threshold,
    }
}
