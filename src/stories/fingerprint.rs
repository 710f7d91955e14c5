//! The fingerprint of an article's text, how two fingerprints are compared, and how one is
//! written to bytes.
//!
//! The text is the headline and the opening of the body (its first [`BODY_WORDS`] words) without
//! the source lines and bylines that open or close it (see [`super::boilerplate`]), folded to its
//! match key and cut into word 3-shingles (the headline and the body separately, so a new
//! headline changes no shingle of the body).
//! The fingerprint keeps a bottom-k sketch of the shingles: the [`SKETCH_SIZE`] smallest
//! 32-bit shingle hashes, with a flag for those that come from the lead (the first
//! [`LEAD_WORDS`] words of the body), and the number of distinct shingles.
//!
//! Bottom-k rather than k-permutation MinHash, because copies of news are often partial (the
//! first paragraphs only) and a bottom-k sketch estimates containment directly: the values of
//! one sketch at or below the other sketch's largest are a uniform sample of the first text
//! whose membership in the second is known exactly, so a text wholly contained in another is
//! measured as contained, whatever their sizes.

use std::fmt;

use crate::domain::{match_key_word_hashes, match_key_word_hashes_read};

use super::boilerplate::Opened;

/// Words of the body, once the lines that open or close it are left out, that a fingerprint
/// reads. Copies of news share their opening, and reading the rest of a long body cost every
/// ingest more than it told copies apart on the labeled set (BENCHMARKS.md, "Fingerprint
/// encoding 2 and a cheaper lookup"). Counted in words of the match key, so that orthographic
/// variants, whose bytes differ, are cut at the same word.
pub const BODY_WORDS: usize = 150;
/// Shingle length, in words.
pub const SHINGLE_WORDS: usize = 3;
/// Number of shingle hashes a fingerprint keeps.
pub const SKETCH_SIZE: usize = 128;
// The lead flags are one bit per sketch value in a u128.
const _: () = assert!(SKETCH_SIZE <= 128);
/// Words at the start of the body that make its lead.
pub const LEAD_WORDS: usize = 50;
/// Min-hashes of the lead kept to find copies that share the lead.
pub const LEAD_KEYS: usize = 4;
/// Fewest sampled shingles a containment is measured on; with fewer, the missing ones count
/// as not shared, so that one or two shared common phrases never make two texts alike.
const MIN_SAMPLES: usize = 4;

/// Seeds of the lead min-hashes.
const LEAD_SEEDS: [u64; LEAD_KEYS] = [
    0x51A6_3A2D_1B8E_7C04,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x85EB_CA77_C2B2_AE63,
];

/// The fingerprint of an article's headline and body (see the module documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Distinct shingles in the text.
    shingles: u32,
    /// The smallest shingle hashes, ascending, at most [`SKETCH_SIZE`].
    sketch: Vec<u32>,
    /// Bit `i` is set when `sketch[i]` is the hash of a lead shingle.
    lead: u128,
    /// Min-hashes of the lead shingles, one per seed; zero for an empty text.
    lead_keys: [u32; LEAD_KEYS],
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fingerprint")
            .field("shingles", &self.shingles)
            .field("sketch_len", &self.sketch.len())
            .field("lead_in_sketch", &self.lead.count_ones())
            .field("lead_keys", &self.lead_keys)
            .finish()
    }
}

/// Why bytes are not an encoded [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintDecodeError {
    /// Written by a version this one does not know; the article must be fingerprinted again.
    #[error("fingerprint encoding version {0} is not supported (expected {ver})", ver = Fingerprint::ENCODING_VERSION)]
    UnsupportedVersion(u8),
    /// The bytes end before the fingerprint does.
    #[error("fingerprint is truncated")]
    Truncated,
    /// The bytes break a rule of the encoding.
    #[error("fingerprint is malformed: {0}")]
    Malformed(&'static str),
}

impl Fingerprint {
    /// Version of [`Fingerprint::to_bytes`]; it changes whenever the text preparation, the
    /// hashing or the sketch changes, since fingerprints of different versions do not compare.
    pub const ENCODING_VERSION: u8 = 3;

    /// Fingerprints an article from its headline and body.
    pub fn of_article(headline: &str, body: &str) -> Self {
        // Each word's hash (FNV-1a over its characters) is mixed: stable across platforms and
        // releases, as stored fingerprints require.
        let mut headline_words = match_key_word_hashes(headline, usize::MAX);
        let mut body_words = body_word_hashes(body);
        for hash in headline_words.iter_mut().chain(body_words.iter_mut()) {
            *hash = mix(*hash);
        }

        let mut hashes: Vec<u64> = Vec::with_capacity(headline_words.len() + body_words.len());
        shingle(&headline_words, &mut hashes);
        let body_start = hashes.len();
        shingle(&body_words, &mut hashes);
        // The lead is the body's opening; a text without a body leads with its headline.
        let lead_range = if body_words.is_empty() {
            0..hashes.len()
        } else {
            let lead_shingles = LEAD_WORDS.saturating_sub(SHINGLE_WORDS - 1).max(1);
            body_start..(body_start + lead_shingles).min(hashes.len())
        };
        let lead_hashes = &hashes[lead_range.clone()];
        let mut lead_keys = [0u32; LEAD_KEYS];
        if !lead_hashes.is_empty() {
            for (key, seed) in lead_keys.iter_mut().zip(LEAD_SEEDS) {
                *key = lead_hashes
                    .iter()
                    .map(|h| high32(mix(h ^ seed)))
                    .min()
                    .unwrap_or(0);
            }
        }
        // Each shingle's value with a low bit clear when it is a lead shingle, sorted: of the
        // shingles sharing a value, a lead one comes first and is the one kept.
        let tagged: Vec<u64> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| u64::from(high32(*h)) << 1 | u64::from(!lead_range.contains(&i)))
            .collect();
        let mut tagged = sort_tagged(&tagged, hashes);
        tagged.dedup_by_key(|t| *t >> 1);
        let shingles = u32::try_from(tagged.len()).unwrap_or(u32::MAX);
        tagged.truncate(SKETCH_SIZE);
        // Two 64-bit halves: a 128-bit shift by a variable is several instructions and a branch.
        let half = |tagged: &[u64]| {
            tagged
                .iter()
                .enumerate()
                .fold(0u64, |flags, (i, t)| flags | (!t & 1) << i)
        };
        let (low, high) = tagged.split_at(tagged.len().min(64));
        let lead = u128::from(half(high)) << 64 | u128::from(half(low));
        let values = tagged.iter().map(|t| (*t >> 1) as u32).collect();
        Self {
            shingles,
            sketch: values,
            lead,
            lead_keys,
        }
    }

    /// Whether the text had no words at all; such a fingerprint is like nothing.
    pub fn is_empty(&self) -> bool {
        self.sketch.is_empty()
    }

    /// Number of distinct shingles in the text.
    pub fn shingle_count(&self) -> u32 {
        self.shingles
    }

    /// How much of one text is in the other, from 0 (nothing shared) to 1 (one is a copy of
    /// the other or contains it and opens the same way): the share of the longer text found in
    /// the shorter, or, when the two share their lead, the share of the shorter found in the
    /// longer. Symmetric. See [`Fingerprint::similarity_parts`].
    pub fn similarity(&self, other: &Self) -> f32 {
        self.similarity_parts(other).score()
    }

    /// The estimates [`Fingerprint::similarity`] is made of.
    pub fn similarity_parts(&self, other: &Self) -> SimilarityParts {
        self.view().similarity_parts(other.view())
    }

    /// A borrowed view of the sketch.
    pub(crate) fn view(&self) -> SketchView<'_> {
        SketchView {
            shingles: self.shingles,
            sketch: &self.sketch,
            lead: self.lead,
        }
    }

    /// The binary form, for storing with the article version it was made from: `[version]
    /// [shingles: varint][sketch length: u8][lead flags: one bit per sketch value][sketch
    /// values: u32 LE each, ascending][lead keys: u32 LE each]`. A seed-sized article takes
    /// about 550 bytes. The values are written whole: with the body read to its first
    /// [`BODY_WORDS`] words, a text has a few hundred shingles at most, so its smallest 128
    /// hashes spread over most of the 32-bit range and the gaps between them would take as
    /// many bytes as the values do.
    pub fn to_bytes(&self) -> Vec<u8> {
        let flag_bytes = self.sketch.len().div_ceil(8);
        let mut out = Vec::with_capacity(7 + flag_bytes + 4 * (self.sketch.len() + LEAD_KEYS));
        out.push(Self::ENCODING_VERSION);
        put_varint(&mut out, self.shingles);
        // SKETCH_SIZE fits a byte, and the sketch never grows past it.
        out.push(u8::try_from(self.sketch.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.lead.to_le_bytes()[..flag_bytes]);
        for value in &self.sketch {
            out.extend_from_slice(&value.to_le_bytes());
        }
        if !self.is_empty() {
            for key in self.lead_keys {
                out.extend_from_slice(&key.to_le_bytes());
            }
        }
        out
    }

    /// Reads what [`Fingerprint::to_bytes`] wrote; any other input is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FingerprintDecodeError> {
        use FingerprintDecodeError::{Malformed, Truncated, UnsupportedVersion};
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.byte()?;
        if version != Self::ENCODING_VERSION {
            return Err(UnsupportedVersion(version));
        }
        let shingles = reader.varint()?;
        let length = usize::from(reader.byte()?);
        if length > SKETCH_SIZE {
            return Err(Malformed("sketch is longer than the sketch size"));
        }
        if length != (shingles as usize).min(SKETCH_SIZE) {
            return Err(Malformed("sketch length does not match the shingle count"));
        }
        let flag_bytes = length.div_ceil(8);
        let mut flags = [0u8; 16];
        flags[..flag_bytes].copy_from_slice(reader.take(flag_bytes)?);
        let lead = u128::from_le_bytes(flags);
        if length < 128 && lead >> length != 0 {
            return Err(Malformed("lead flag set past the end of the sketch"));
        }
        let mut sketch = Vec::with_capacity(length);
        for _ in 0..length {
            let value = reader.u32()?;
            if sketch.last().is_some_and(|&previous| value <= previous) {
                return Err(Malformed("sketch values are not strictly ascending"));
            }
            sketch.push(value);
        }
        let mut lead_keys = [0u32; LEAD_KEYS];
        if length > 0 {
            for key in &mut lead_keys {
                *key = reader.u32()?;
            }
        }
        if reader.at != bytes.len() {
            return Err(if reader.at > bytes.len() {
                Truncated
            } else {
                Malformed("trailing bytes after the fingerprint")
            });
        }
        Ok(Self {
            shingles,
            sketch,
            lead,
            lead_keys,
        })
    }

    /// Heap bytes held by this fingerprint.
    pub fn heap_bytes(&self) -> usize {
        self.sketch.capacity() * std::mem::size_of::<u32>()
    }

    /// The sketch values, ascending.
    pub(crate) fn sketch(&self) -> &[u32] {
        &self.sketch
    }

    /// The lead flags of the sketch values.
    pub(crate) fn lead_flags(&self) -> u128 {
        self.lead
    }

    /// The lead keys.
    pub(crate) fn lead_keys(&self) -> [u32; LEAD_KEYS] {
        self.lead_keys
    }
}

/// The hashes of the first [`BODY_WORDS`] words of `body` without its furniture lines: what
/// `match_key_word_hashes(strip_furniture(body), BODY_WORDS)` gives, reading the body's first
/// words before its closing lines are looked at, since in a long body they lie past those
/// words and whether they are furniture changes nothing; the words are read again only when
/// closing lines are left out.
fn body_word_hashes(body: &str) -> Vec<u64> {
    let opened = Opened::of(body);
    let text = opened.text();
    let (words, read) = match_key_word_hashes_read(text, BODY_WORDS);
    if read.is_some_and(|read| read <= opened.closing_from()) {
        return words;
    }
    let stripped = opened.without_closing_furniture();
    // Both start where the opening lines end; nothing but white space left out at the end
    // leaves the same words.
    if text[stripped.len()..].trim().is_empty() {
        return words;
    }
    match_key_word_hashes(stripped, BODY_WORDS)
}

/// The estimates a similarity is made of, each from 0 to 1.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimilarityParts {
    /// Share of the longer text found in the shorter one.
    pub longer_covered: f32,
    /// Share of the shorter text found in the longer one.
    pub shorter_contained: f32,
    /// Share of a lead found in the other text (the larger of the two leads' shares).
    pub lead_shared: f32,
}

impl SimilarityParts {
    /// The similarity: a copy covers most of its original, or, if it is a partial copy, is
    /// contained in it and opens as it does. A follow-up that repeats an earlier story's
    /// background paragraphs is contained in part but opens differently.
    pub fn score(&self) -> f32 {
        self.longer_covered
            .max(self.shorter_contained.min(self.lead_shared))
    }
}

/// A sketch as an index keeps it, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct SketchView<'a> {
    /// Distinct shingles in the text.
    pub shingles: u32,
    /// The smallest shingle hashes, ascending.
    pub sketch: &'a [u32],
    /// Lead flags of the sketch values.
    pub lead: u128,
}

impl SketchView<'_> {
    /// Whether the sketch holds every shingle of its text.
    fn is_complete(&self) -> bool {
        self.sketch.len() as u64 >= u64::from(self.shingles)
    }

    /// See [`Fingerprint::similarity_parts`].
    pub(crate) fn similarity_parts(self, other: SketchView<'_>) -> SimilarityParts {
        if self.sketch.is_empty() || other.sketch.is_empty() {
            return SimilarityParts::default();
        }
        let shared = Shared::of(self, other);
        let (forward, lead_forward) = containment(self, other, shared.hits, shared.lead_hits.0);
        let (backward, lead_backward) = containment(other, self, shared.hits, shared.lead_hits.1);
        let (lower, higher) = match (forward, backward) {
            (Some(a), Some(b)) if a.ratio() <= b.ratio() => (a, b),
            (Some(a), Some(b)) => (b, a),
            (Some(only), None) | (None, Some(only)) => (only, only),
            (None, None) => return SimilarityParts::default(),
        };
        SimilarityParts {
            longer_covered: lower.measured(),
            shorter_contained: higher.cautious(),
            lead_shared: lead_forward
                .map_or(0.0, Sample::cautious)
                .max(lead_backward.map_or(0.0, Sample::cautious)),
        }
    }
}

/// Shingles of one text looked up in another.
#[derive(Clone, Copy)]
struct Sample {
    hits: usize,
    samples: usize,
    /// Whether the sample is every shingle of the text, so that the ratio is exact.
    exact: bool,
}

impl Sample {
    fn ratio(self) -> f32 {
        self.hits as f32 / self.samples as f32
    }

    /// The ratio, counting the shingles missing from a sample smaller than [`MIN_SAMPLES`] as
    /// not shared.
    fn cautious(self) -> f32 {
        self.hits as f32 / self.samples.max(MIN_SAMPLES) as f32
    }

    /// The ratio, exact when the sample is the whole text, otherwise cautious.
    fn measured(self) -> f32 {
        if self.exact {
            self.ratio()
        } else {
            self.cautious()
        }
    }
}

/// The values two sketches share.
struct Shared {
    /// How many.
    hits: usize,
    /// How many of them are lead shingles of the first sketch, and of the second.
    lead_hits: (usize, usize),
}

impl Shared {
    /// One merge of the two sketches, which both ascend strictly. Written without branches on
    /// the values, which are random, so that the processor never guesses wrong.
    fn of(a: SketchView<'_>, b: SketchView<'_>) -> Self {
        let (mut i, mut j, mut hits, mut lead_a, mut lead_b) = (0, 0, 0, 0, 0);
        while i < a.sketch.len() && j < b.sketch.len() {
            let (x, y) = (a.sketch[i], b.sketch[j]);
            let hit = usize::from(x == y);
            hits += hit;
            lead_a += hit & ((a.lead >> i) as usize & 1);
            lead_b += hit & ((b.lead >> j) as usize & 1);
            i += usize::from(x <= y);
            j += usize::from(y <= x);
        }
        Self {
            hits,
            lead_hits: (lead_a, lead_b),
        }
    }
}

/// Shingles of `a` looked up in `b`, all of them and those of its lead, given how many of
/// each the two sketches share: the values of `a`'s sketch that `b`'s sketch can answer for
/// are those at or below `b`'s largest value when `b`'s sketch is truncated, all of them
/// otherwise, and a shared value is one of those. `None` when there are none.
fn containment(
    a: SketchView<'_>,
    b: SketchView<'_>,
    hits: usize,
    lead_hits: usize,
) -> (Option<Sample>, Option<Sample>) {
    let Some(&last) = b.sketch.last() else {
        return (None, None);
    };
    let answered = if b.is_complete() {
        a.sketch.len()
    } else {
        a.sketch.partition_point(|&value| value <= last)
    };
    let cut = answered < a.sketch.len();
    let answered_mask = if answered >= 128 {
        u128::MAX
    } else {
        (1u128 << answered) - 1
    };
    let lead_samples = (a.lead & answered_mask).count_ones() as usize;
    let sample = |hits, samples| {
        (samples > 0).then_some(Sample {
            hits,
            samples,
            exact: a.is_complete() && !cut,
        })
    };
    (sample(hits, answered), sample(lead_hits, lead_samples))
}

/// Hashes of the word `SHINGLE_WORDS`-grams of `words`; a text shorter than that is one shingle.
fn shingle(words: &[u64], out: &mut Vec<u64>) {
    if words.is_empty() {
        return;
    }
    if words.len() < SHINGLE_WORDS {
        out.push(combine(words));
        return;
    }
    out.extend(words.windows(SHINGLE_WORDS).map(combine));
}

/// One hash of a few word hashes (each already mixed), in order: each is rotated by its place,
/// so that the same words in another order differ, and the whole is mixed once.
fn combine(words: &[u64]) -> u64 {
    mix(words
        .iter()
        .zip((0..).step_by(21))
        .fold(0x243F_6A88_85A3_08D3, |h, (w, turn)| {
            h ^ w.rotate_left(turn)
        }))
}

/// Tagged shingle values (a 32-bit hash above a flag bit), ascending, written over `buffer`:
/// one counting pass on their top eight bits, then an insertion sort, which finds each value
/// almost in place since hashes spread evenly over the buckets.
fn sort_tagged(tagged: &[u64], mut buffer: Vec<u64>) -> Vec<u64> {
    const SHIFT: u32 = 33 - 8;
    let bucket = |value: u64| ((value >> SHIFT) as usize).min(255);
    let mut starts = [0usize; 256];
    for &value in tagged {
        starts[bucket(value)] += 1;
    }
    let mut start = 0;
    for slot in &mut starts {
        (*slot, start) = (start, start + *slot);
    }
    buffer.clear();
    buffer.resize(tagged.len(), 0);
    for &value in tagged {
        let slot = &mut starts[bucket(value)];
        buffer[*slot] = value;
        *slot += 1;
    }
    for i in 1..buffer.len() {
        let value = buffer[i];
        let mut j = i;
        while j > 0 && buffer[j - 1] > value {
            buffer[j] = buffer[j - 1];
            j -= 1;
        }
        buffer[j] = value;
    }
    buffer
}

/// The SplitMix64 finalizer: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn high32(h: u64) -> u32 {
    (h >> 32) as u32
}

fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, FingerprintDecodeError> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or(FingerprintDecodeError::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FingerprintDecodeError> {
        let slice = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or(FingerprintDecodeError::Truncated)?;
        self.at += n;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, FingerprintDecodeError> {
        let raw = self.take(4)?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }

    /// A LEB128 u32 in its shortest form.
    fn varint(&mut self) -> Result<u32, FingerprintDecodeError> {
        let mut value = 0u32;
        for shift in [0, 7, 14, 21, 28] {
            let byte = self.byte()?;
            let bits = u32::from(byte & 0x7F);
            if shift == 28 && bits > 0x0F {
                return Err(FingerprintDecodeError::Malformed(
                    "varint overflows 32 bits",
                ));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(FingerprintDecodeError::Malformed(
                        "varint is not in its shortest form",
                    ));
                }
                return Ok(value);
            }
        }
        Err(FingerprintDecodeError::Malformed(
            "varint is longer than 5 bytes",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stories::strip_furniture;

    const SEED: &str = include_str!("../../tests/fixtures/seed-article-ar.txt");
    const HEADLINE: &str = "أمريكا تتخلى عن حلفائها في سوريا في ذروة المعارك مع “داعش”";

    #[test]
    fn tagged_values_are_sorted_as_a_comparison_sort_sorts_them() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for len in [0, 1, 2, 31, 200, 1_000] {
            let tagged: Vec<u64> = (0..len)
                .map(|i| {
                    state = mix(state);
                    // Some repeated values, and some where only the flag differs.
                    let value = if i % 7 == 3 { 12_345 << 1 } else { state >> 31 };
                    value | (i as u64 & 1)
                })
                .collect();
            let mut expected = tagged.clone();
            expected.sort_unstable();
            assert_eq!(sort_tagged(&tagged, Vec::new()), expected, "{len} values");
        }
    }

    #[test]
    fn the_bytes_of_known_texts_are_pinned() {
        // Stored fingerprints are compared with new ones: a change to what these bytes are
        // needs a new `ENCODING_VERSION` (and this digest taken again), never a silent one.
        use sha2::{Digest, Sha256};
        let body = seed_body();
        let opening: String = body.split("\n\n").take(3).collect::<Vec<_>>().join("\n\n");
        let texts = [
            (HEADLINE, body.as_str()),
            (HEADLINE, opening.as_str()),
            ("", body.as_str()),
            (
                "يروِّجُ الخبرَ عن «داعش»، في ٢٠١٦؟",
                "تتخلّى أمريكا عن حلفائها… المصدر: موقع",
            ),
            (
                "Élan VITAL: “déjà vu” — 2016",
                "The U.S. abandons its ALLIES in Syria; fighting with ISIS peaks (Reuters).",
            ),
            ("كلمة", ""),
            ("", ""),
        ];
        let mut digest = Sha256::new();
        for (headline, body) in texts {
            digest.update(Fingerprint::of_article(headline, body).to_bytes());
        }
        let hex: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "ff276b7a025f5f48eaaede5524a1151b935305b4ae4db5f1837aa21ddd5fe942"
        );
    }

    fn seed_body() -> String {
        SEED.split_once("\n\n182\n\n")
            .map(|(_, body)| body.to_owned())
            .unwrap()
    }

    #[test]
    fn the_same_text_is_identical() {
        let a = Fingerprint::of_article(HEADLINE, &seed_body());
        let b = Fingerprint::of_article(HEADLINE, &seed_body());
        assert_eq!(a, b);
        assert_eq!(a.similarity(&b), 1.0);
        assert_eq!(a.sketch.len(), SKETCH_SIZE);
        // The headline's shingles and those of the body's first BODY_WORDS words.
        let headline_shingles = 11 - (SHINGLE_WORDS as u32 - 1);
        let body_shingles = BODY_WORDS as u32 - (SHINGLE_WORDS as u32 - 1);
        assert_eq!(
            a.shingle_count(),
            headline_shingles + body_shingles,
            "{a:?}"
        );
        assert!(a.lead.count_ones() > 0, "{a:?}");
    }

    #[test]
    fn closing_lines_are_looked_at_only_when_they_could_count() {
        let body = seed_body();
        let paragraphs: Vec<&str> = body.split("\n\n").collect();
        let furniture = [
            "المصدر: وكالات",
            "بقلم: أحمد محمود",
            "(رويترز)",
            "Source: Reuters",
        ];
        let mut bodies = vec![body.clone(), String::new(), "المصدر: وكالات".to_owned()];
        for keep in [1, 2, 3, 5, paragraphs.len()] {
            for closing in 0..=furniture.len() {
                let mut lines: Vec<&str> = furniture[..closing.min(1)].to_vec();
                lines.extend(&paragraphs[..keep]);
                lines.extend(&furniture[..closing]);
                bodies.push(lines.join("\n\n"));
                // A closing line that is not furniture stops the stripping.
                lines.push("فقرة أخيرة من الخبر نفسه");
                bodies.push(lines.join("\n"));
            }
        }
        // The limit reached only within the closing lines, which are furniture.
        let words: Vec<&str> = body.split_whitespace().take(BODY_WORDS - 2).collect();
        bodies.push(format!(
            "{}\nالمصدر: وكالات\n(رويترز)\nSource: Reuters",
            words.join(" ")
        ));
        for body in &bodies {
            assert_eq!(
                body_word_hashes(body),
                match_key_word_hashes(strip_furniture(body), BODY_WORDS),
                "{body}"
            );
        }
    }

    #[test]
    fn only_the_opening_of_a_long_body_counts() {
        let body = seed_body();
        let words: Vec<&str> = body.split_whitespace().collect();
        assert!(words.len() > 2 * BODY_WORDS, "the seed is long");
        let original = Fingerprint::of_article(HEADLINE, &body);
        // Everything after the words a fingerprint reads, rewritten or cut.
        let mut rewritten_end = words.clone();
        rewritten_end.truncate(BODY_WORDS + 1);
        rewritten_end.extend(["نص", "آخر", "تماما"].repeat(50));
        for other in [rewritten_end.join(" "), words[..BODY_WORDS].join(" ")] {
            assert_eq!(Fingerprint::of_article(HEADLINE, &other), original);
        }
        // A word changed within them is seen.
        let mut edited = words.clone();
        edited[BODY_WORDS - 2] = "كلمة";
        let edited = Fingerprint::of_article(HEADLINE, &edited.join(" "));
        assert_ne!(edited, original);
        assert!(edited.similarity(&original) > 0.95);
    }

    #[test]
    fn orthographic_variants_and_source_lines_change_nothing() {
        let original = Fingerprint::of_article(HEADLINE, &seed_body());
        let variant_body = seed_body()
            .replace(['\u{0651}', '\u{064B}', '\u{0650}'], "")
            .replace('أ', "ا")
            .replace('ى', "ي")
            .replace('ة', "ه")
            .replace('2', "٢")
            .replace("المصدر: موقع روسيا اليوم", "المصدر : وكالة سبوتنيك");
        let variant = Fingerprint::of_article(
            "امريكا تتخلي عن حلفائها في سوريا في ذروه المعارك مع داعش",
            &variant_body,
        );
        assert_eq!(original, variant);
    }

    #[test]
    fn a_partial_copy_is_contained_and_shares_the_lead() {
        let body = seed_body();
        let first_two: Vec<&str> = body.split("\n\n").take(2).collect();
        let original = Fingerprint::of_article(HEADLINE, &body);
        let copy =
            Fingerprint::of_article("واشنطن تخذل حلفاءها قرب البوكمال", &first_two.join("\n\n"));
        let parts = original.similarity_parts(&copy);
        // All of the copy but its new headline's shingles is in the original.
        assert!(parts.shorter_contained > 0.9, "{parts:?}");
        assert_eq!(parts.lead_shared, 1.0, "{parts:?}");
        assert!(parts.longer_covered < 0.6, "{parts:?}");
        assert_eq!(original.similarity(&copy), parts.shorter_contained);
        assert_eq!(copy.similarity(&original), parts.shorter_contained);
    }

    #[test]
    fn unrelated_texts_are_not_alike() {
        let a = Fingerprint::of_article(HEADLINE, &seed_body());
        let b = Fingerprint::of_article(
            "افتتاح معرض الكتاب في الرباط",
            "افتتح وزير الثقافة صباح اليوم الدورة الجديدة من معرض الكتاب الدولي في الرباط بمشاركة أكثر من خمسمئة دار نشر من ثلاثين بلدا، وتستمر فعالياته عشرة أيام.",
        );
        assert!(a.similarity(&b) < 0.05, "{:?}", a.similarity_parts(&b));
        let empty = Fingerprint::of_article("", "  ");
        assert!(empty.is_empty());
        assert_eq!(a.similarity(&empty), 0.0);
        assert_eq!(empty.similarity(&empty), 0.0);
    }

    #[test]
    fn short_texts_are_one_shingle_or_more() {
        let a = Fingerprint::of_article("عاجل", "");
        assert_eq!(a.shingle_count(), 1);
        assert_eq!(a.similarity(&Fingerprint::of_article("عاجل!", "")), 1.0);
        let b = Fingerprint::of_article("", "انفجار في المرفأ");
        assert_eq!(b.shingle_count(), 1);
    }

    #[test]
    fn encoding_round_trips() {
        for (headline, body) in [
            (HEADLINE, seed_body()),
            ("عاجل", String::new()),
            ("", String::new()),
            ("a b c d e", "f g h".to_owned()),
        ] {
            let fingerprint = Fingerprint::of_article(headline, &body);
            let bytes = fingerprint.to_bytes();
            assert_eq!(
                Fingerprint::from_bytes(&bytes),
                Ok(fingerprint.clone()),
                "{headline}"
            );
            if !fingerprint.is_empty() {
                // The version, the shingle count, the length and the flags, then four bytes
                // for each value and key.
                let values = fingerprint.sketch().len();
                let header = 1 + 1 + values.div_ceil(8);
                let shingles_varint = bytes.len() - header - 4 * (values + LEAD_KEYS);
                assert!((1..=3).contains(&shingles_varint), "{} bytes", bytes.len());
            }
        }
        assert_eq!(
            Fingerprint::of_article("", "").to_bytes(),
            [Fingerprint::ENCODING_VERSION, 0, 0]
        );
    }

    #[test]
    fn decoding_rejects_what_was_not_encoded() {
        let good = Fingerprint::of_article(HEADLINE, &seed_body()).to_bytes();
        assert_eq!(
            Fingerprint::from_bytes(&[]),
            Err(FingerprintDecodeError::Truncated)
        );
        // Earlier encodings (version 1 read the whole body, version 2 hashed words by their
        // UTF-8 bytes) and later ones.
        for version in [1, 2, 4] {
            assert_eq!(
                Fingerprint::from_bytes(&[version, 0, 0]),
                Err(FingerprintDecodeError::UnsupportedVersion(version))
            );
        }
        for cut in 1..good.len() {
            assert!(
                Fingerprint::from_bytes(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(Fingerprint::from_bytes(&longer).is_err());
        // Sketch length that does not match the shingle count, values that repeat or go down,
        // an overlong varint.
        const V: u8 = Fingerprint::ENCODING_VERSION;
        let lead_keys = [0u8; 4 * LEAD_KEYS];
        let with_values = |head: &[u8], values: &[u32]| {
            let values: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            [head, &values, &lead_keys].concat()
        };
        assert!(Fingerprint::from_bytes(&with_values(&[V, 5, 4, 0], &[1, 2, 3, 4])).is_err());
        assert!(Fingerprint::from_bytes(&with_values(&[V, 2, 2, 0], &[7, 8])).is_ok());
        assert!(Fingerprint::from_bytes(&with_values(&[V, 2, 2, 0], &[7, 7])).is_err());
        assert!(Fingerprint::from_bytes(&with_values(&[V, 2, 2, 0], &[8, 7])).is_err());
        assert!(Fingerprint::from_bytes(&[V, 0x80, 0x00, 0]).is_err());
        assert!(Fingerprint::from_bytes(&[V, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0]).is_err());
        // A lead flag past the end of the sketch.
        assert!(Fingerprint::from_bytes(&with_values(&[V, 1, 1, 0b10], &[7])).is_err());
        assert!(Fingerprint::from_bytes(&with_values(&[V, 1, 1, 0b01], &[7])).is_ok());
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let good = Fingerprint::of_article(HEADLINE, &seed_body()).to_bytes();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            bytes.truncate(1 + (next() % bytes.len() as u64) as usize);
            if let Ok(decoded) = Fingerprint::from_bytes(&bytes) {
                assert_eq!(decoded.to_bytes(), bytes);
            }
        }
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = Fingerprint::from_bytes(&bytes);
        }
    }

    #[test]
    fn similarity_is_symmetric() {
        let body = seed_body();
        let paragraphs: Vec<&str> = body.split("\n\n").collect();
        let texts = [
            body.clone(),
            paragraphs[..3].join("\n\n"),
            paragraphs[5..].join("\n\n"),
            paragraphs[..1].join("\n\n"),
            format!("تمهيد قصير للخبر من محرر الموقع\n\n{body}"),
        ];
        for a in &texts {
            for b in &texts {
                let (fa, fb) = (
                    Fingerprint::of_article(HEADLINE, a),
                    Fingerprint::of_article("", b),
                );
                assert_eq!(fa.similarity(&fb), fb.similarity(&fa));
            }
        }
    }

    /// [`containment`] as its definition reads: `a`'s values that `b` can answer for, looked
    /// up in `b` one by one.
    fn containment_by_lookup(
        a: SketchView<'_>,
        b: SketchView<'_>,
    ) -> [Option<(usize, usize, bool)>; 2] {
        let Some(&last) = b.sketch.last() else {
            return [None, None];
        };
        let answered: Vec<usize> = (0..a.sketch.len())
            .filter(|&i| b.is_complete() || a.sketch[i] <= last)
            .collect();
        let is_lead = |i: usize| a.lead >> i & 1 == 1;
        let shared = |i: &&usize| b.sketch.contains(&a.sketch[**i]);
        let exact = a.is_complete() && answered.len() == a.sketch.len();
        let hits = answered.iter().filter(shared).count();
        let lead: Vec<usize> = answered.iter().copied().filter(|&i| is_lead(i)).collect();
        let lead_hits = lead.iter().filter(shared).count();
        [
            (!answered.is_empty()).then_some((hits, answered.len(), exact)),
            (!lead.is_empty()).then_some((lead_hits, lead.len(), exact)),
        ]
    }

    #[test]
    fn one_merge_counts_what_looking_each_value_up_counts() {
        // Texts of a few shingles to many more than a sketch holds, sharing runs of words, so
        // that sketches are complete or cut, and share values in and out of their leads.
        let body = seed_body();
        let words: Vec<&str> = body.split_whitespace().collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut texts = Vec::new();
        for _ in 0..40 {
            state = mix(state);
            let start = (state % words.len() as u64) as usize;
            let len = 1 + (state >> 20) as usize % 200;
            texts.push(words[start..(start + len).min(words.len())].join(" "));
        }
        let fingerprints: Vec<Fingerprint> = texts
            .iter()
            .map(|t| Fingerprint::of_article("", t))
            .collect();
        assert!(fingerprints.iter().any(|f| f.view().is_complete()));
        assert!(fingerprints.iter().any(|f| !f.view().is_complete()));
        let mut shared_leads = 0;
        for fa in &fingerprints {
            for fb in &fingerprints {
                let (a, b) = (fa.view(), fb.view());
                let shared = Shared::of(a, b);
                shared_leads += shared.lead_hits.0;
                let as_tuple = |(sample, lead): (Option<Sample>, Option<Sample>)| {
                    [sample, lead].map(|s| s.map(|s| (s.hits, s.samples, s.exact)))
                };
                assert_eq!(
                    as_tuple(containment(a, b, shared.hits, shared.lead_hits.0)),
                    containment_by_lookup(a, b)
                );
                assert_eq!(
                    as_tuple(containment(b, a, shared.hits, shared.lead_hits.1)),
                    containment_by_lookup(b, a)
                );
            }
        }
        assert!(shared_leads > 0);
    }
}
