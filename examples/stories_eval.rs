//! Evaluates story assignment on the labeled pairs of `tests/fixtures/stories/`: tunes the
//! threshold on the tuning half, reports precision and recall on the held-out half through an
//! index holding a realistic number of unrelated articles, the time to fingerprint an article
//! and look it up, and the index's memory. Also scores the measures the fingerprint was chosen
//! over (exact Jaccard, exact containment, 64-bit SimHash) on the same pairs.
//!
//! ```sh
//! cargo run --release --locked --example stories_eval
//! cargo run --release --locked --example stories_eval -- --background 20000 --timed 500
//! ```

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use khabar::{
    domain::{Timestamp, match_key},
    stories::{DEFAULT_THRESHOLD, Fingerprint, StoryConfig, strip_furniture},
};

#[path = "../tests/stories/labeled.rs"]
mod labeled;

use labeled::{LabeledSet, Pair, Scores};

struct Options {
    background: usize,
    timed: usize,
    max_seconds: u64,
}

fn options() -> Options {
    let mut options = Options {
        background: 100_000,
        timed: 2_000,
        max_seconds: 600,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--background", Some(v)) => options.background = v as usize,
            ("--timed", Some(v)) => options.timed = v as usize,
            ("--max-seconds", Some(v)) => options.max_seconds = v,
            _ => {
                eprintln!("usage: stories_eval [--background N] [--timed N] [--max-seconds S]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    options
}

fn main() {
    let options = options();
    let deadline = Instant::now() + Duration::from_secs(options.max_seconds);
    let set = labeled::load();
    let tune: Vec<&Pair> = set.pairs.iter().filter(|p| !p.held_out).collect();
    let held_out: Vec<&Pair> = set.pairs.iter().filter(|p| p.held_out).collect();
    println!(
        "labeled set: {} pairs ({} Arabic), tuning half {}, held-out half {}",
        set.pairs.len(),
        set.pairs.iter().filter(|p| p.lang == "ar").count(),
        tune.len(),
        held_out.len()
    );

    // Tuning: the similarity of each tuning pair, and the threshold with the best F1.
    let tune_scored: Vec<(&Pair, f32)> = tune
        .iter()
        .map(|p| (*p, set.fingerprint(&p.a).similarity(&set.fingerprint(&p.b))))
        .collect();
    let (low, high, chosen) = labeled::tune(&tune_scored);
    let at_default = labeled::score_at(&tune_scored, DEFAULT_THRESHOLD);
    println!(
        "tuning half: best F1 {:.3} for thresholds {low:.2}..={high:.2} (middle {chosen:.2}); default {DEFAULT_THRESHOLD:.2} gives precision={:.3} recall={:.3}",
        labeled::score_at(&tune_scored, chosen).f1(),
        at_default.precision(),
        at_default.recall()
    );

    compare_measures(&set, &tune, &held_out);

    // The held-out half through an index with a realistic background.
    let config = StoryConfig::default();
    let started = Instant::now();
    let (mut index, mut next_id) = labeled::background_index(&set, config, options.background);
    println!(
        "background: {} articles indexed in {:.1} s; index memory {:.1} MiB (accounted), {} held",
        options.background,
        started.elapsed().as_secs_f64(),
        index.memory_bytes() as f64 / (1 << 20) as f64,
        index.len()
    );
    let scores = labeled::evaluate(&set, &held_out, &mut index, &mut next_id);
    print_details("held-out half", &scores);

    // Fingerprint + lookup time for seed-sized articles against that index.
    let mut writer = labeled::Background::new(&set, "ar", 99);
    let texts: Vec<labeled::Text> = (0..options.timed).map(|_| writer.article(380)).collect();
    let at = Timestamp::new(labeled::T0, 0).expect("in range");
    let mut fingerprints = Vec::with_capacity(texts.len());
    let fingerprint_time = Clock::start();
    for text in &texts {
        fingerprints.push(Fingerprint::of_article(&text.headline, &text.body));
    }
    let fingerprint_time = fingerprint_time.per(texts.len());
    let stats_before = index.stats();
    let assign_time = Clock::start();
    let mut timed = 0;
    for fingerprint in &fingerprints {
        if Instant::now() > deadline {
            break;
        }
        std::hint::black_box(index.assign(labeled::article_id(next_id), at, fingerprint));
        next_id += 1;
        timed += 1;
    }
    let assign_time = assign_time.per(timed);
    let stats = index.stats();
    let per = |a: u64, b: u64| (a - b) as f64 / timed.max(1) as f64;
    println!(
        "lookups: {:.0} postings visited, {:.1} candidates, {:.1} scored per article",
        per(stats.postings_visited, stats_before.postings_visited),
        per(stats.candidates, stats_before.candidates),
        per(stats.scored, stats_before.scored)
    );
    let seed = &set.texts["ar-seed"];
    let seed_runs = 500;
    let seed_time = Clock::start();
    for _ in 0..seed_runs {
        let fingerprint = Fingerprint::of_article(&seed.headline, &seed.body);
        std::hint::black_box(index.assign(labeled::article_id(next_id), at, &fingerprint));
        next_id += 1;
    }
    let seed_time = seed_time.per(seed_runs);
    println!(
        "timing (wall / on-CPU, us per article, index of {} entries): seed-sized synthetic articles: fingerprint {} + assign {} ({timed} articles); the seed article itself, fingerprint + assign, each copy linked to the previous: {}",
        index.len(),
        fingerprint_time,
        assign_time,
        seed_time,
    );
    let synthetic_us = fingerprint_time.wall_us + assign_time.wall_us;
    let seed_us = seed_time.wall_us;
    println!(
        "{}",
        labeled::report_line(&scores, Some(synthetic_us.max(seed_us)))
    );
}

/// Wall-clock and on-CPU time of this thread (the machine may be busy with other work; the
/// on-CPU time is what this process itself spent).
struct Clock {
    wall: Instant,
    cpu_ns: Option<u64>,
}

struct Elapsed {
    wall_us: f64,
    cpu_us: Option<f64>,
}

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cpu_us {
            Some(cpu) => write!(f, "{:.1} / {cpu:.1}", self.wall_us),
            None => write!(f, "{:.1} / n.a.", self.wall_us),
        }
    }
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu_ns: thread_cpu_ns(),
        }
    }

    fn per(self, count: usize) -> Elapsed {
        let count = count.max(1) as f64;
        Elapsed {
            wall_us: self.wall.elapsed().as_secs_f64() * 1e6 / count,
            cpu_us: self
                .cpu_ns
                .zip(thread_cpu_ns())
                .map(|(start, end)| (end - start) as f64 / 1e3 / count),
        }
    }
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn print_details(name: &str, scores: &Scores) {
    println!(
        "{name}: tp={} fp={} fn={} tn={}",
        scores.true_positives,
        scores.false_positives,
        scores.false_negatives,
        scores.true_negatives
    );
    for (kind, (n, ok)) in &scores.by_kind {
        println!("  {kind:<14} {ok}/{n}");
    }
    for (pair, similarity) in &scores.mistakes {
        println!(
            "  wrong: {} ~ {} same={} kind={} similarity={similarity:.3}",
            pair.a, pair.b, pair.same_story, pair.kind
        );
    }
}

/// The word 3-shingles of an article, prepared as the fingerprint prepares them.
fn shingles(set: &LabeledSet, name: &str) -> HashSet<String> {
    let text = &set.texts[name];
    let mut out = HashSet::new();
    for part in [
        match_key(&text.headline),
        match_key(strip_furniture(&text.body)),
    ] {
        let words: Vec<&str> = part.split(' ').filter(|w| !w.is_empty()).collect();
        if words.len() < 3 {
            if !words.is_empty() {
                out.insert(words.join(" "));
            }
            continue;
        }
        for gram in words.windows(3) {
            out.insert(gram.join(" "));
        }
    }
    out
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// 64-bit SimHash of a shingle set (Charikar; Manku et al. 2007).
fn simhash(set: &HashSet<String>) -> u64 {
    let mut counts = [0i32; 64];
    for s in set {
        let h = fnv(s);
        for (bit, count) in counts.iter_mut().enumerate() {
            *count += if h >> bit & 1 == 1 { 1 } else { -1 };
        }
    }
    counts
        .iter()
        .enumerate()
        .fold(0, |acc, (bit, c)| if *c > 0 { acc | 1 << bit } else { acc })
}

/// Best F1 on the tuning half of each alternative measure, and the held-out scores at that
/// threshold.
fn compare_measures(set: &LabeledSet, tune: &[&Pair], held_out: &[&Pair]) {
    type Measure = fn(&HashSet<String>, &HashSet<String>) -> f32;
    let measures: [(&str, Measure); 3] = [
        ("exact Jaccard", |a, b| {
            a.intersection(b).count() as f32 / a.union(b).count().max(1) as f32
        }),
        ("exact overlap coefficient", |a, b| {
            a.intersection(b).count() as f32 / a.len().min(b.len()).max(1) as f32
        }),
        ("SimHash 64 (1 - hamming/64)", |a, b| {
            1.0 - (simhash(a) ^ simhash(b)).count_ones() as f32 / 64.0
        }),
    ];
    println!(
        "alternative measures (threshold tuned on the tuning half, scored on the held-out half):"
    );
    for (name, measure) in &measures {
        let score = |pairs: &[&Pair]| -> Vec<(Pair, f32)> {
            pairs
                .iter()
                .map(|p| {
                    (
                        (*p).clone(),
                        measure(&shingles(set, &p.a), &shingles(set, &p.b)),
                    )
                })
                .collect()
        };
        let tuned = score(tune);
        let tuned_refs: Vec<(&Pair, f32)> = tuned.iter().map(|(p, s)| (p, *s)).collect();
        let (_, _, threshold) = labeled::tune(&tuned_refs);
        let held = score(held_out);
        let held_refs: Vec<(&Pair, f32)> = held.iter().map(|(p, s)| (p, *s)).collect();
        let at = labeled::score_at(&held_refs, threshold);
        println!(
            "  {name:<30} threshold {threshold:.2}: tuning F1 {:.3}; held-out precision={:.3} recall={:.3} f1={:.3}",
            labeled::score_at(&tuned_refs, threshold).f1(),
            at.precision(),
            at.recall(),
            at.f1()
        );
    }
}
