//! Story assignment measured on the labeled pairs of `tests/fixtures/stories/` (the targets
//! hold on the held-out half; the default threshold is the one tuned on the tuning half), and
//! the memory a week of news takes in a `StoryIndex`.
//!
//! `cargo run --release --example stories_eval` prints the same measurements with a realistic
//! background of 100,000 articles and the time per article.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use khabar::{
    domain::Timestamp,
    stories::{DEFAULT_THRESHOLD, Fingerprint, SKETCH_SIZE, StoryConfig, StoryIndex},
};

#[path = "stories/labeled.rs"]
mod labeled;

use labeled::Pair;

/// Counts the bytes each thread has allocated and not freed, so a test can measure what a
/// structure it builds holds while other tests run on other threads.
struct CountingAllocator;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = HELD.try_with(|held| held.set(held.get() + delta));
}

fn held_bytes() -> isize {
    HELD.with(Cell::get)
}

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is updated.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees are passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees are passed on.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees are passed on.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's guarantees are passed on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn the_labeled_set_has_200_pairs_mostly_arabic_and_every_kind_in_both_halves() {
    let set = labeled::load();
    let arabic = set.pairs.iter().filter(|p| p.lang == "ar").count();
    assert!(set.pairs.len() >= 200, "{} pairs", set.pairs.len());
    assert!(
        arabic * 2 >= set.pairs.len(),
        "{arabic} Arabic pairs of {}",
        set.pairs.len()
    );
    for held_out in [false, true] {
        let kinds: std::collections::BTreeSet<&str> = set
            .pairs
            .iter()
            .filter(|p| p.held_out == held_out)
            .map(|p| p.kind.as_str())
            .collect();
        for kind in [
            "orthographic",
            "partial",
            "headline",
            "boilerplate",
            "byline",
            "source-line",
            "combined",
            "opening",
            "follow-up",
            "same-actors",
            "template",
            "unrelated",
        ] {
            assert!(
                kinds.contains(kind),
                "{kind} missing (held out: {held_out})"
            );
        }
    }
    for pair in &set.pairs {
        let (a, b) = (&set.texts[&pair.a], &set.texts[&pair.b]);
        assert!(a.headline != b.headline || a.body != b.body, "{pair:?}");
    }
}

#[test]
fn held_out_pairs_meet_the_targets() {
    let set = labeled::load();
    let (mut index, mut next_id) = labeled::background_index(&set, StoryConfig::default(), 1_500);
    let held_out: Vec<&Pair> = set.pairs.iter().filter(|p| p.held_out).collect();
    let scores = labeled::evaluate(&set, &held_out, &mut index, &mut next_id);
    println!("{}", labeled::report_line(&scores, None));
    let mistakes: Vec<String> = scores
        .mistakes
        .iter()
        .map(|(p, s)| {
            format!(
                "{} ~ {} ({}, same={}, similarity {s:.3})",
                p.a, p.b, p.kind, p.same_story
            )
        })
        .collect();
    assert!(
        scores.precision() >= 0.98 && scores.recall() >= 0.95,
        "{}; mistakes: {mistakes:#?}",
        labeled::report_line(&scores, None)
    );
    assert_eq!(
        scores.kind_accuracy("orthographic"),
        Some(1.0),
        "{mistakes:#?}"
    );
}

#[test]
fn orthographic_variants_are_always_one_story() {
    let set = labeled::load();
    let (mut index, mut next_id) = labeled::background_index(&set, StoryConfig::default(), 200);
    let orthographic: Vec<&Pair> = set
        .pairs
        .iter()
        .filter(|p| p.kind == "orthographic")
        .collect();
    let scores = labeled::evaluate(&set, &orthographic, &mut index, &mut next_id);
    assert_eq!(scores.recall(), 1.0, "{:?}", scores.mistakes);
    for pair in orthographic {
        let (a, b) = (set.fingerprint(&pair.a), set.fingerprint(&pair.b));
        assert_eq!(a.similarity(&b), 1.0, "{pair:?}");
    }
}

#[test]
fn the_default_threshold_is_the_one_tuned_on_the_tuning_half() {
    let set = labeled::load();
    let tune: Vec<(&Pair, f32)> = set
        .pairs
        .iter()
        .filter(|p| !p.held_out)
        .map(|p| (p, set.fingerprint(&p.a).similarity(&set.fingerprint(&p.b))))
        .collect();
    let (low, high, chosen) = labeled::tune(&tune);
    assert!(
        (chosen - DEFAULT_THRESHOLD).abs() < 0.005,
        "the tuning half's best F1 is reached for {low:.2}..={high:.2}; its middle {chosen:.2} should be the default, not {DEFAULT_THRESHOLD}"
    );
}

/// A fingerprint as a seed-sized article gives (all of its sketch used), with random values.
fn synthetic_fingerprint(rng: &mut labeled::Rng) -> Fingerprint {
    let shingles = 350 + rng.below(250) as u32;
    // The smallest SKETCH_SIZE of `shingles` uniform hashes lie in the bottom
    // SKETCH_SIZE / shingles of the range.
    let span = (u64::from(u32::MAX) * SKETCH_SIZE as u64 / u64::from(shingles)) as u32;
    let mut values: Vec<u32> = Vec::with_capacity(SKETCH_SIZE + 8);
    while values.len() < SKETCH_SIZE {
        // Collisions are rare at this span: one sort per top-up keeps this cheap in debug builds.
        while values.len() < SKETCH_SIZE + 8 {
            values.push((rng.next() % u64::from(span)) as u32);
        }
        values.sort_unstable();
        values.dedup();
    }
    values.truncate(SKETCH_SIZE);
    let mut bytes = vec![Fingerprint::ENCODING_VERSION];
    put_varint(&mut bytes, shingles);
    bytes.push(SKETCH_SIZE as u8);
    let mut flags = 0u128;
    for _ in 0..12 {
        flags |= 1 << rng.below(SKETCH_SIZE);
    }
    bytes.extend_from_slice(&flags.to_le_bytes()[..SKETCH_SIZE / 8]);
    for value in &values {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    for _ in 0..khabar::stories::LEAD_KEYS {
        bytes.extend_from_slice(&(rng.next() as u32).to_le_bytes());
    }
    Fingerprint::from_bytes(&bytes).expect("a valid encoding")
}

fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[test]
fn a_week_of_100k_articles_takes_less_than_150_mib() {
    const ARTICLES: u64 = 100_000;
    const WEEK: i64 = 7 * 24 * 60 * 60;
    let mut rng = labeled::Rng(7);
    let before = held_bytes();
    let mut index = StoryIndex::new(StoryConfig::default());
    for n in 0..ARTICLES {
        let fingerprint = synthetic_fingerprint(&mut rng);
        // Spread over the week, the last one still within a window of the first.
        let at =
            Timestamp::new(labeled::T0 + (n as i64 * (WEEK - 1)) / ARTICLES as i64, 0).unwrap();
        index.assign(labeled::article_id(n), at, &fingerprint);
    }
    assert_eq!(index.len(), ARTICLES as usize, "nothing was evicted");
    let measured = (held_bytes() - before) as usize + std::mem::size_of::<StoryIndex>();
    let accounted = index.memory_bytes();
    let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
    println!(
        "story index, {ARTICLES} articles over 7 days: {:.1} MiB allocated, {:.1} MiB accounted",
        mib(measured),
        mib(accounted)
    );
    assert!(mib(measured) < 150.0, "{:.1} MiB", mib(measured));
    let ratio = accounted as f64 / measured as f64;
    assert!(
        (0.9..1.1).contains(&ratio),
        "accounting is off: {accounted} for {measured} bytes"
    );
}
