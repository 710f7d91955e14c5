//! [`StoryIndex`]: the articles of the last window, found by their sketches, and the story each
//! belongs to.
//!
//! Every entry is filed under [`INDEXED_SKETCH`] of its smallest sketch values and its lead
//! keys. An article's lead keys are looked up first: the earliest filed entry sharing all of
//! them is scored at once, and if it reaches [`SURE_MATCH`] the lookup ends there (a copy, found
//! with a fifth of the postings). Otherwise the article's candidates are the entries filed under
//! all its keys (for each key the [`MAX_PER_KEY`] most recently filed that qualify); those
//! sharing a lead key or at least two sketch values are ranked by how much they share, and the
//! first [`MAX_SCORED`] are scored with [`Fingerprint::similarity`], stopping at the first that
//! reaches [`SURE_MATCH`], so that joining a story of thousands of copies costs what joining a
//! story of three does. Stock phrases put the same small hashes in many sketches; the ranking
//! keeps their postings from crowding out the articles that share a text. The postings are
//! bucket chains in flat arrays, doubly linked so that removing an entry costs the same whatever
//! other articles share its keys; candidates are visited and ties broken in an order that
//! depends only on the calls made, never on hash seeds or memory addresses.

use std::{
    collections::{BTreeSet, HashMap},
    hash::{BuildHasher, Hasher},
    mem::size_of,
    time::Duration,
};

use crate::domain::{ArticleContent, ArticleId, StoryLink, Timestamp};

use super::fingerprint::{Fingerprint, LEAD_KEYS, SKETCH_SIZE, SketchView};

/// Sketch values an entry is filed under (its smallest); the rest only score candidates.
/// Sixteen find every copy of the labeled set that 32 found (with a background of 20,000
/// articles), with half the postings to file and walk.
pub const INDEXED_SKETCH: usize = 16;
/// Most entries taken as candidates under one key: keys shared by very many articles (a site's
/// template, a stock phrase) say little, and the most recent of them are the likeliest match.
pub const MAX_PER_KEY: usize = 16;
/// Weight of a shared lead key; a shared sketch value weighs 1.
const LEAD_KEY_WEIGHT: u32 = 2;
/// Least weight of shared keys for an entry to be scored.
const MIN_EVIDENCE: u32 = 2;
/// Most candidates scored, the best-supported first.
pub const MAX_SCORED: usize = 24;
/// Similarity at which scoring stops: a candidate this close is a copy of the article.
pub const SURE_MATCH: f32 = 0.95;
/// Most entries under one key looked at when few of them qualify (window, order).
const MAX_EXAMINED_PER_KEY: usize = 8 * MAX_PER_KEY;
/// Keys of one entry: its indexed sketch values, then its lead keys.
const KEYS_PER_ENTRY: usize = INDEXED_SKETCH + LEAD_KEYS;
/// End of a chain.
const NONE: u32 = u32::MAX;
/// Fewest buckets.
const MIN_BUCKET_BITS: u32 = 10;

/// The default window: articles published more than this apart are never linked.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The default similarity from which an article is linked to an earlier one, tuned on the
/// labeled pairs in `tests/fixtures/stories/`.
pub const DEFAULT_THRESHOLD: f32 = 0.54;

/// How a [`StoryIndex`] links articles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoryConfig {
    /// Articles whose `published_at` are further apart than this are never linked, and entries
    /// older than this before the newest `published_at` seen are evicted.
    pub window: Duration,
    /// Similarity (0..=1) from which an article is linked to an earlier one.
    pub threshold: f32,
}

impl Default for StoryConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// Where an article belongs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assignment {
    /// The id of the first article of its story; its own id when it starts one.
    pub story_id: ArticleId,
    /// The most similar earlier article, if any reaches the threshold.
    pub duplicate_of: Option<ArticleId>,
    /// Similarity (0..=1) to `duplicate_of`; 0 when there is none.
    pub similarity: f32,
}

impl Assignment {
    fn alone(article: ArticleId) -> Self {
        Self {
            story_id: article,
            duplicate_of: None,
            similarity: 0.0,
        }
    }
}

/// Work done by lookups since the index was made, for metrics and tuning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Articles looked up (assigned or updated).
    pub lookups: u64,
    /// Postings visited while walking the keys' chains.
    pub postings_visited: u64,
    /// Entries found under at least one key, in the window and filed earlier.
    pub candidates: u64,
    /// Candidates whose similarity was computed.
    pub scored: u64,
}

/// One article in the index. Its sketch lives in `StoryIndex::sketches` and its postings in
/// `StoryIndex::links`, at its slot.
#[derive(Debug, Clone)]
struct Entry {
    id: ArticleId,
    story: ArticleId,
    /// Seconds of `published_at` (the window is counted in whole seconds).
    published: i64,
    /// The full `published_at`, for the eviction order.
    published_at: Timestamp,
    /// Order of filing: an article is only ever linked to one filed before it.
    seq: u64,
    lead: u128,
    lead_keys: [u32; LEAD_KEYS],
    shingles: u32,
    sketch_len: u8,
}

impl Entry {
    /// The assignment of an article found `similarity` alike to this entry.
    fn link(&self, similarity: f32) -> Assignment {
        Assignment {
            story_id: self.story,
            duplicate_of: Some(self.id),
            similarity,
        }
    }
}

/// A posting: its neighbours in its bucket's chain and the key it is filed under (kept here,
/// although the entry holds it too, so that a walk down a chain reads nothing else until a key
/// matches).
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    key: u32,
}

const UNLINKED: Link = Link {
    prev: NONE,
    next: NONE,
    key: 0,
};

/// The articles of the last window and their stories (see the module documentation).
///
/// The same sequence of calls always gives the same assignments. The state after a sequence of
/// calls depends only on the entries present (with their stories), the order in which they were
/// last filed (by [`StoryIndex::assign`], [`StoryIndex::update`] or [`StoryIndex::restore`]),
/// and the newest `published_at` seen, so an index rebuilt by [`StoryIndex::restore`] of the
/// present entries in the order of their last version (and [`StoryIndex::advance`] to the
/// newest `published_at` of the log) assigns the next articles exactly as the original would
/// have.
#[derive(Debug)]
pub struct StoryIndex {
    config: StoryConfig,
    window_secs: i64,
    entries: Chunked<Option<Entry>, 1>,
    free: Vec<u32>,
    /// `SKETCH_SIZE` values per slot.
    sketches: Chunked<u32, SKETCH_SIZE>,
    /// `KEYS_PER_ENTRY` links per slot.
    links: Chunked<Link, KEYS_PER_ENTRY>,
    heads: Vec<u32>,
    bucket_bits: u32,
    live_links: usize,
    by_id: HashMap<ArticleId, u32, FixedState>,
    by_time: BTreeSet<(Timestamp, u64, u32)>,
    newest: Option<Timestamp>,
    next_seq: u64,
    stats: LookupStats,
    /// Evidence summed per slot during a lookup; all zero between lookups.
    scratch_weights: Vec<u32>,
    /// Candidates of a lookup (slot, filing order, evidence); empty between lookups.
    scratch_candidates: Vec<(u32, u64, u32)>,
}

impl Default for StoryIndex {
    fn default() -> Self {
        Self::new(StoryConfig::default())
    }
}

impl StoryIndex {
    /// An empty index.
    pub fn new(config: StoryConfig) -> Self {
        Self {
            config,
            window_secs: i64::try_from(config.window.as_secs()).unwrap_or(i64::MAX),
            entries: Chunked::default(),
            free: Vec::new(),
            sketches: Chunked::default(),
            links: Chunked::default(),
            heads: vec![NONE; 1 << MIN_BUCKET_BITS],
            bucket_bits: MIN_BUCKET_BITS,
            live_links: 0,
            by_id: HashMap::with_hasher(FixedState),
            by_time: BTreeSet::new(),
            newest: None,
            next_seq: 0,
            stats: LookupStats::default(),
            scratch_weights: Vec::new(),
            scratch_candidates: Vec::new(),
        }
    }

    /// Work done by lookups so far.
    pub fn stats(&self) -> LookupStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> StoryConfig {
        self.config
    }

    /// Number of articles held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no article is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether `article` is held.
    pub fn contains(&self, article: ArticleId) -> bool {
        self.by_id.contains_key(&article)
    }

    /// The story of a held article.
    pub fn story_of(&self, article: ArticleId) -> Option<ArticleId> {
        let slot = *self.by_id.get(&article)?;
        self.entry(slot).map(|e| e.story)
    }

    /// The newest `published_at` seen.
    pub fn newest(&self) -> Option<Timestamp> {
        self.newest
    }

    /// Assigns a new article: links it to the most similar article held (all were filed before
    /// it) published within the window of it, whose similarity reaches the threshold, and takes
    /// that article's story; otherwise it starts its own story. Ties go to the article filed
    /// first; the first candidate scored at [`SURE_MATCH`] or above is taken at once. The article is then held (unless it is already older than the window before the
    /// newest `published_at` seen, in which case it is evicted at once).
    ///
    /// An article already held is treated as an update ([`StoryIndex::update`]).
    pub fn assign(
        &mut self,
        article: ArticleId,
        published_at: Timestamp,
        fingerprint: &Fingerprint,
    ) -> Assignment {
        if self.by_id.contains_key(&article) {
            return self.update(article, published_at, fingerprint);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let assignment = self.best_match(article, published_at, fingerprint, seq, None);
        self.stats.lookups += 1;
        self.insert(article, published_at, fingerprint, assignment.story_id, seq);
        self.advance(published_at);
        assignment
    }

    /// Assigns a new version of a held article (an update re-fingerprints it). Its old entry is
    /// taken out and the new version is filed as the latest arrival: it is compared with every
    /// other article held, including those filed after its first version (so `duplicate_of` may
    /// name an article published later, such as a copy of it). It keeps its story if it still
    /// reaches the threshold with an article of that story (linked to the most similar of
    /// them), else it joins the story of the most similar article that does, else it starts its
    /// own story (its own id). Articles that joined its story earlier keep their assignments:
    /// nothing already assigned is rewritten. An article not held is assigned as new.
    pub fn update(
        &mut self,
        article: ArticleId,
        published_at: Timestamp,
        fingerprint: &Fingerprint,
    ) -> Assignment {
        let Some((_, story)) = self.take(article) else {
            return self.assign(article, published_at, fingerprint);
        };
        // Filed as the latest arrival, as a rebuild in the order of last versions files it.
        let seq = self.next_seq;
        self.next_seq += 1;
        let assignment = self.best_match(article, published_at, fingerprint, seq, Some(story));
        self.stats.lookups += 1;
        self.insert(article, published_at, fingerprint, assignment.story_id, seq);
        self.advance(published_at);
        assignment
    }

    /// Places a version an ingest decided on: a new article is assigned, a new version of a
    /// held one updated; fingerprinted here unless the caller already did. Returns the story
    /// link to store with the version and the fingerprint's byte form.
    pub fn place(
        &mut self,
        article: ArticleId,
        content: &ArticleContent,
        fingerprint: Option<&Fingerprint>,
        updated: bool,
    ) -> (StoryLink, Vec<u8>) {
        let computed;
        let fingerprint = match fingerprint {
            Some(given) => given,
            None => {
                computed = Fingerprint::of_article(&content.headline, &content.body);
                &computed
            }
        };
        let assignment = if updated {
            self.update(article, content.published_at, fingerprint)
        } else {
            self.assign(article, content.published_at, fingerprint)
        };
        let link = StoryLink {
            story_id: assignment.story_id,
            duplicate_of: assignment.duplicate_of,
            similarity: assignment.similarity,
        };
        (link, fingerprint.to_bytes())
    }

    /// Holds an article whose story is already known, as when rebuilding the index from stored
    /// fingerprints: replays of the live articles in cursor order of their last version give
    /// the index the state it had. An article already held is replaced, filed as the latest
    /// arrival.
    pub fn restore(
        &mut self,
        article: ArticleId,
        published_at: Timestamp,
        fingerprint: &Fingerprint,
        story_id: ArticleId,
    ) {
        self.take(article);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(article, published_at, fingerprint, story_id, seq);
        self.advance(published_at);
    }

    /// Forgets an article (retracted); returns whether it was held. Articles linked to it keep
    /// their assignments.
    pub fn remove(&mut self, article: ArticleId) -> bool {
        self.take(article).is_some()
    }

    /// Notes that an article was published at `published_at` without holding it (a retracted
    /// article, when rebuilding), and evicts the entries that fall out of the window.
    pub fn advance(&mut self, published_at: Timestamp) {
        if self.newest.is_some_and(|newest| newest >= published_at) {
            return;
        }
        self.newest = Some(published_at);
        let cutoff_secs = published_at.seconds().saturating_sub(self.window_secs);
        while let Some(&(oldest, _, slot)) = self.by_time.first() {
            if oldest.seconds() >= cutoff_secs {
                break;
            }
            if let Some(id) = self.entry(slot).map(|e| e.id) {
                self.take(id);
            } else {
                self.by_time.pop_first();
            }
        }
    }

    /// Bytes of memory the index holds (its allocations, by capacity), for accounting.
    pub fn memory_bytes(&self) -> usize {
        // A B-tree node holds up to 11 keys and is on average about two-thirds full; each also
        // carries a parent pointer, lengths and, inside the tree, child pointers.
        let btree_key = size_of::<(Timestamp, u64, u32)>();
        let btree = self.by_time.len() * (btree_key + 24) * 3 / 2;
        // A hashbrown table: capacity rounded up to a power of two buckets at 7/8 load, one
        // control byte per bucket.
        let buckets = (self.by_id.capacity() * 8 / 7).next_power_of_two();
        let by_id = buckets * (size_of::<(ArticleId, u32)>() + 1);
        size_of::<Self>()
            + self.entries.heap_bytes()
            + self.free.capacity() * size_of::<u32>()
            + self.sketches.heap_bytes()
            + self.links.heap_bytes()
            + self.heads.capacity() * size_of::<u32>()
            + self.scratch_weights.capacity() * size_of::<u32>()
            + self.scratch_candidates.capacity() * size_of::<(u32, u64, u32)>()
            + by_id
            + btree
    }

    /// Scores the candidates of an article and picks where it belongs.
    fn best_match(
        &mut self,
        article: ArticleId,
        published_at: Timestamp,
        fingerprint: &Fingerprint,
        seq: u64,
        previous_story: Option<ArticleId>,
    ) -> Assignment {
        if fingerprint.is_empty() {
            return Assignment::alone(article);
        }
        let published = published_at.seconds();
        // Every posting found, weighted and summed per entry: a shared lead key (same seed) is
        // strong evidence, a shared sketch value weaker, as stock phrases share them too. The
        // sums are kept in a scratch array by slot, reset after use, rather than sorted.
        let mut weights = std::mem::take(&mut self.scratch_weights);
        let mut candidates = std::mem::take(&mut self.scratch_candidates);
        if weights.len() < self.entries.slots() {
            weights.resize(self.entries.slots(), 0);
        }
        let sketch_keys = fingerprint.sketch().len().min(INDEXED_SKETCH);
        // The first lead key first: an entry filed under it that has all of the article's lead
        // keys opens as the article does, and if it is a copy, nothing else need be walked.
        let lead_keys = fingerprint.lead_keys();
        self.collect_postings(
            lead_keys[0],
            Some(0),
            seq,
            published,
            &mut weights,
            &mut candidates,
        );
        let copy = self.sure_copy_by_lead(fingerprint, &candidates, previous_story);
        if copy.is_none() {
            for (seed, key) in lead_keys.into_iter().enumerate().skip(1) {
                self.collect_postings(
                    key,
                    Some(seed),
                    seq,
                    published,
                    &mut weights,
                    &mut candidates,
                );
            }
            for &key in &fingerprint.sketch()[..sketch_keys] {
                self.collect_postings(key, None, seq, published, &mut weights, &mut candidates);
            }
        }
        for (slot, _, weight) in &mut candidates {
            *weight = std::mem::take(&mut weights[*slot as usize]);
        }
        self.scratch_weights = weights;
        if let Some(copy) = copy {
            candidates.clear();
            self.scratch_candidates = candidates;
            self.stats.scored += 1;
            return copy;
        }
        self.stats.candidates += candidates.len() as u64;
        candidates.retain(|(_, _, weight)| *weight >= MIN_EVIDENCE);
        // The best-supported candidates, the earliest filed first among equals.
        candidates.sort_unstable_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)));
        candidates.truncate(MAX_SCORED);

        // (similarity, seq, slot) of the best candidate overall and within the previous story.
        let mut best: Option<(f32, u64, u32)> = None;
        let mut best_in_story: Option<(f32, u64, u32)> = None;
        let better = |current: Option<(f32, u64, u32)>, similarity: f32, seq: u64| {
            current.is_none_or(|(s, q, _)| similarity > s || (similarity == s && seq < q))
        };
        let mut scored = 0;
        for &(slot, _, _) in &candidates {
            let Some(entry) = self.entry(slot) else {
                continue;
            };
            scored += 1;
            let similarity = fingerprint
                .view()
                .similarity_parts(self.view_at(slot, entry))
                .score();
            if similarity < self.config.threshold {
                continue;
            }
            if better(best, similarity, entry.seq) {
                best = Some((similarity, entry.seq, slot));
            }
            let in_story = previous_story == Some(entry.story);
            if in_story && better(best_in_story, similarity, entry.seq) {
                best_in_story = Some((similarity, entry.seq, slot));
            }
            // A copy this close settles it: the rest could only be other copies of the same
            // text, and scoring them all is what makes a story of thousands of copies cost
            // more than a story of three. An update keeps looking for its own story.
            if similarity >= SURE_MATCH && (previous_story.is_none() || in_story) {
                break;
            }
        }
        self.stats.scored += scored;
        candidates.clear();
        self.scratch_candidates = candidates;
        match best_in_story.or(best) {
            Some((similarity, _, slot)) => self
                .entry(slot)
                .expect("candidates are live entries")
                .link(similarity),
            None => Assignment::alone(article),
        }
    }

    /// Adds the weight of each posting under `key` (a lead key of seed `lead_seed`, or a
    /// sketch value) to the entry it names, for the [`MAX_PER_KEY`] most recent entries that
    /// qualify: filed before `seq`, published within the window of `published`.
    fn collect_postings(
        &mut self,
        key: u32,
        lead_seed: Option<usize>,
        seq: u64,
        published: i64,
        weights: &mut [u32],
        candidates: &mut Vec<(u32, u64, u32)>,
    ) {
        let mut taken = 0;
        let mut examined = 0;
        let mut node = self.heads[self.bucket(key)];
        while node != NONE && taken < MAX_PER_KEY && examined < MAX_EXAMINED_PER_KEY {
            self.stats.postings_visited += 1;
            let slot = node / KEYS_PER_ENTRY as u32;
            let link = self.links[node as usize];
            if link.key == key {
                examined += 1;
                if let Some(entry) = self.entry(slot)
                    && entry.seq < seq
                    && entry.published.abs_diff(published) <= self.window_secs.unsigned_abs()
                {
                    let node_lead_seed =
                        (node as usize % KEYS_PER_ENTRY).checked_sub(INDEXED_SKETCH);
                    let weight = if lead_seed.is_some() && lead_seed == node_lead_seed {
                        LEAD_KEY_WEIGHT
                    } else {
                        1
                    };
                    let total = &mut weights[slot as usize];
                    if *total == 0 {
                        candidates.push((slot, entry.seq, 0));
                    }
                    *total += weight;
                    taken += 1;
                }
            }
            node = link.next;
        }
    }

    /// After the first lead key was walked: the earliest filed of the entries found that have
    /// every lead key of the article, if it is a sure match (see [`SURE_MATCH`]) an update may
    /// take (one in the article's previous story).
    fn sure_copy_by_lead(
        &self,
        fingerprint: &Fingerprint,
        candidates: &[(u32, u64, u32)],
        previous_story: Option<ArticleId>,
    ) -> Option<Assignment> {
        let lead_keys = fingerprint.lead_keys();
        let (slot, entry) = candidates
            .iter()
            .filter_map(|&(slot, _, _)| Some((slot, self.entry(slot)?)))
            .filter(|(_, entry)| entry.lead_keys == lead_keys)
            .min_by_key(|(_, entry)| entry.seq)?;
        if previous_story.is_some_and(|story| story != entry.story) {
            return None;
        }
        let similarity = fingerprint
            .view()
            .similarity_parts(self.view_at(slot, entry))
            .score();
        (similarity >= SURE_MATCH && similarity >= self.config.threshold)
            .then(|| entry.link(similarity))
    }

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.entries.get(slot as usize).and_then(Option::as_ref)
    }

    fn view_at(&self, slot: u32, entry: &Entry) -> SketchView<'_> {
        SketchView {
            shingles: entry.shingles,
            sketch: &self.sketches.slot(slot as usize)[..usize::from(entry.sketch_len)],
            lead: entry.lead,
        }
    }

    /// The key a posting node is filed under.
    fn key_at(&self, node: u32) -> u32 {
        let slot = node as usize / KEYS_PER_ENTRY;
        let k = node as usize % KEYS_PER_ENTRY;
        if k < INDEXED_SKETCH {
            self.sketches[slot * SKETCH_SIZE + k]
        } else {
            self.entries[slot]
                .as_ref()
                .map_or(0, |e| e.lead_keys[k - INDEXED_SKETCH])
        }
    }

    /// The posting nodes an entry occupies: its indexed sketch values and, unless its text was
    /// empty, its lead keys.
    fn nodes_of(slot: u32, entry: &Entry) -> impl Iterator<Item = u32> {
        let base = slot * KEYS_PER_ENTRY as u32;
        let sketch =
            (0..usize::from(entry.sketch_len).min(INDEXED_SKETCH) as u32).map(move |k| base + k);
        let lead_count = if entry.sketch_len == 0 {
            0
        } else {
            LEAD_KEYS as u32
        };
        let lead = (0..lead_count).map(move |k| base + INDEXED_SKETCH as u32 + k);
        sketch.chain(lead)
    }

    fn bucket(&self, key: u32) -> usize {
        bucket_of(key, self.bucket_bits)
    }

    fn insert(
        &mut self,
        article: ArticleId,
        published_at: Timestamp,
        fingerprint: &Fingerprint,
        story: ArticleId,
        seq: u64,
    ) {
        let sketch = fingerprint.sketch();
        let entry = Entry {
            id: article,
            story,
            published: published_at.seconds(),
            published_at,
            seq,
            lead: fingerprint.lead_flags(),
            lead_keys: fingerprint.lead_keys(),
            shingles: fingerprint.shingle_count(),
            sketch_len: u8::try_from(sketch.len()).unwrap_or(u8::MAX),
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.entries.slots())
                    .ok()
                    .filter(|slot| slot.checked_mul(KEYS_PER_ENTRY as u32).is_some())
                    .expect("fewer than 2^32 / KEYS_PER_ENTRY entries");
                self.entries.push_slot(None);
                self.sketches.push_slot(0);
                self.links.push_slot(UNLINKED);
                slot
            }
        };
        self.sketches.slot_mut(slot as usize)[..sketch.len()].copy_from_slice(sketch);
        let nodes: Vec<u32> = Self::nodes_of(slot, &entry).collect();
        self.by_id.insert(article, slot);
        self.by_time.insert((published_at, seq, slot));
        self.entries[slot as usize] = Some(entry);
        for node in nodes {
            let key = self.key_at(node);
            let bucket = self.bucket(key);
            let head = self.heads[bucket];
            self.links[node as usize] = Link {
                prev: NONE,
                next: head,
                key,
            };
            if head != NONE {
                self.links[head as usize].prev = node;
            }
            self.heads[bucket] = node;
            self.live_links += 1;
        }
        // At most two postings per bucket on average.
        if self.live_links > 2 << self.bucket_bits {
            self.rebucket(self.bucket_bits + 1);
        }
    }

    /// Removes a held article; returns its filing order and story.
    fn take(&mut self, article: ArticleId) -> Option<(u64, ArticleId)> {
        let slot = self.by_id.remove(&article)?;
        let entry = self.entries[slot as usize].take()?;
        for node in Self::nodes_of(slot, &entry) {
            let Link { prev, next, key } = self.links[node as usize];
            if prev == NONE {
                let bucket = self.bucket(key);
                self.heads[bucket] = next;
            } else {
                self.links[prev as usize].next = next;
            }
            if next != NONE {
                self.links[next as usize].prev = prev;
            }
            self.links[node as usize] = UNLINKED;
            self.live_links -= 1;
        }
        self.by_time.remove(&(entry.published_at, entry.seq, slot));
        self.free.push(slot);
        Some((entry.seq, entry.story))
    }

    /// Moves every posting to a table of `2^bits` buckets. Doubling splits each chain in two
    /// in order, so the postings of one key keep their order.
    fn rebucket(&mut self, bits: u32) {
        let size = 1usize << bits;
        let mut heads = vec![NONE; size];
        let mut tails = vec![NONE; size];
        for &first in &self.heads {
            let mut node = first;
            while node != NONE {
                let Link { next, key, .. } = self.links[node as usize];
                let bucket = bucket_of(key, bits);
                let tail = tails[bucket];
                self.links[node as usize] = Link {
                    prev: tail,
                    next: NONE,
                    key,
                };
                if tail == NONE {
                    heads[bucket] = node;
                } else {
                    self.links[tail as usize].next = node;
                }
                tails[bucket] = node;
                node = next;
            }
        }
        self.heads = heads;
        self.bucket_bits = bits;
    }
}

/// Fibonacci hashing: sketch values are the smallest of their text's hashes, so their high bits
/// are mostly zero and would crowd the first buckets; the multiplication spreads them.
fn bucket_of(key: u32, bits: u32) -> usize {
    (u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

/// Slots per chunk of a [`Chunked`] array.
const CHUNK_SLOTS: usize = 1024;

/// A growable array of slots of `STRIDE` elements, in chunks of [`CHUNK_SLOTS`] slots: growing
/// never moves what is stored (no copy, no moment with two copies in memory), and the spare
/// room is less than one chunk.
#[derive(Debug)]
struct Chunked<T, const STRIDE: usize> {
    chunks: Vec<Box<[T]>>,
    slots: usize,
}

impl<T, const STRIDE: usize> Default for Chunked<T, STRIDE> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            slots: 0,
        }
    }
}

impl<T: Clone, const STRIDE: usize> Chunked<T, STRIDE> {
    /// Number of slots.
    fn slots(&self) -> usize {
        self.slots
    }

    /// Adds a slot with every element `fill`.
    fn push_slot(&mut self, fill: T) {
        if self.slots == self.chunks.len() * CHUNK_SLOTS {
            self.chunks
                .push(vec![fill.clone(); CHUNK_SLOTS * STRIDE].into_boxed_slice());
        }
        let slot = self.slots;
        self.slots += 1;
        self.slot_mut(slot).fill(fill);
    }

    fn slot(&self, slot: usize) -> &[T] {
        let start = (slot % CHUNK_SLOTS) * STRIDE;
        &self.chunks[slot / CHUNK_SLOTS][start..start + STRIDE]
    }

    fn slot_mut(&mut self, slot: usize) -> &mut [T] {
        let start = (slot % CHUNK_SLOTS) * STRIDE;
        &mut self.chunks[slot / CHUNK_SLOTS][start..start + STRIDE]
    }

    /// The element at `index` (slot `index / STRIDE`), if that slot exists.
    fn get(&self, index: usize) -> Option<&T> {
        (index / STRIDE < self.slots).then(|| &self[index])
    }

    fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * size_of::<Box<[T]>>()
            + self.chunks.len() * CHUNK_SLOTS * STRIDE * size_of::<T>()
    }
}

impl<T, const STRIDE: usize> std::ops::Index<usize> for Chunked<T, STRIDE> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        let per_chunk = CHUNK_SLOTS * STRIDE;
        &self.chunks[index / per_chunk][index % per_chunk]
    }
}

impl<T, const STRIDE: usize> std::ops::IndexMut<usize> for Chunked<T, STRIDE> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        let per_chunk = CHUNK_SLOTS * STRIDE;
        &mut self.chunks[index / per_chunk][index % per_chunk]
    }
}

/// A hasher with no random seed for the id map: lookups only, never iterated, so its order
/// cannot leak into assignments; ULIDs are random enough in their low bits.
#[derive(Debug, Clone, Copy, Default)]
struct FixedState;

impl BuildHasher for FixedState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0x243F_6A88_85A3_08D3)
    }
}

struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(29);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.write_u64(value as u64);
        self.write_u64((value >> 64) as u64);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

#[cfg(test)]
mod tests {
    use ulid::Ulid;

    use super::*;

    const DAY: i64 = 24 * 60 * 60;
    const T0: i64 = 1_700_000_000;

    fn id(n: u64) -> ArticleId {
        ArticleId::from_ulid(Ulid(u128::from(n) << 20 | 0x5EED))
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::new(seconds, 0).expect("in range")
    }

    /// A text of `words` made-up Arabic words, different for every `seed`.
    fn text(seed: u64, words: usize) -> String {
        const LETTERS: [char; 12] = ['ب', 'ت', 'س', 'ش', 'ع', 'ف', 'ق', 'ل', 'م', 'ن', 'ر', 'د'];
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(words);
        for _ in 0..words {
            let mut word = String::new();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.push(LETTERS[(state % LETTERS.len() as u64) as usize]);
            }
            out.push(word);
        }
        out.join(" ")
    }

    /// The stored form of [`article`], as a store would persist it.
    fn article_bytes(seed: u64) -> Vec<u8> {
        article(seed).to_bytes()
    }

    fn article(seed: u64) -> Fingerprint {
        Fingerprint::of_article(&text(seed + 1_000, 8), &text(seed, 300))
    }

    #[test]
    fn a_copy_joins_the_story_of_its_original() {
        let mut index = StoryIndex::default();
        let first = index.assign(id(1), at(T0), &article(1));
        assert_eq!(first, Assignment::alone(id(1)));
        let other = index.assign(id(2), at(T0 + 60), &article(2));
        assert_eq!(other, Assignment::alone(id(2)));

        let copy = index.assign(id(3), at(T0 + 120), &article(1));
        assert_eq!(copy.story_id, id(1));
        assert_eq!(copy.duplicate_of, Some(id(1)));
        assert_eq!(copy.similarity, 1.0);

        // A copy of the copy is linked to the earliest of the two equals and keeps the story.
        let again = index.assign(id(4), at(T0 + 180), &article(1));
        assert_eq!(again.story_id, id(1));
        assert_eq!(again.duplicate_of, Some(id(1)));
        assert_eq!(index.story_of(id(4)), Some(id(1)));
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn a_story_of_many_copies_costs_no_more_to_join_than_one_of_three() {
        let mut index = StoryIndex::default();
        let mut scored = Vec::new();
        for n in 0..400u64 {
            let before = index.stats();
            let assignment = index.assign(id(n), at(T0 + n as i64), &article(1));
            if n > 0 {
                assert_eq!(assignment.story_id, id(0), "article {n}");
                assert_eq!(assignment.similarity, 1.0, "article {n}");
            }
            let after = index.stats();
            scored.push(after.scored - before.scored);
            assert!(
                after.postings_visited - before.postings_visited <= MAX_PER_KEY as u64,
                "a copy is found by its first lead key alone"
            );
        }
        // The first copy that is this close settles it.
        assert!(scored[1..].iter().all(|&n| n == 1), "{scored:?}");
    }

    #[test]
    fn a_copy_that_opens_differently_is_found_by_its_sketch() {
        let mut index = StoryIndex::default();
        let body = text(7, 140);
        let words: Vec<&str> = body.split(' ').collect();
        index.assign(id(1), at(T0), &Fingerprint::of_article("", &body));
        for n in 2..40 {
            index.assign(id(n), at(T0), &article(n));
        }
        // Another outlet's opening paragraph before the same text.
        let intro = text(99, 30);
        let copy = format!("{intro} {}", words[..110].join(" "));
        let copy = Fingerprint::of_article("", &copy);
        let original = Fingerprint::of_article("", &body);
        assert_ne!(copy.lead_keys(), original.lead_keys(), "another lead");
        let linked = index.assign(id(50), at(T0 + 1), &copy);
        assert_eq!(linked.story_id, id(1), "{linked:?}");
        assert!(linked.similarity >= DEFAULT_THRESHOLD, "{linked:?}");
    }

    #[test]
    fn an_update_looks_past_a_sure_match_for_its_own_story() {
        let mut index = StoryIndex::default();
        // The same text in two stories; the third article is in the second.
        index.restore(id(1), at(T0), &article(1), id(1));
        index.restore(id(2), at(T0 + 1), &article(1), id(2));
        index.restore(id(3), at(T0 + 2), &article(1), id(2));
        let updated = index.update(id(3), at(T0 + 2), &article(1));
        assert_eq!(updated.story_id, id(2));
        assert_eq!(updated.duplicate_of, Some(id(2)));
    }

    #[test]
    fn the_most_similar_earlier_article_wins_and_gives_its_story() {
        // Shorter than the part of a body a fingerprint reads.
        let body = text(7, 140);
        let words: Vec<&str> = body.split(' ').collect();
        let replaced = |from: usize, to: usize, seed: u64| {
            let other = text(seed, to - from);
            let mut out: Vec<&str> = words.clone();
            out.splice(from..to, other.split(' '));
            Fingerprint::of_article("", &out.join(" "))
        };
        let mut index = StoryIndex::default();
        // Two stories held: the text with its last fifth rewritten, then the text itself.
        let rewritten_end = replaced(112, 140, 70);
        index.restore(id(1), at(T0), &rewritten_end, id(1));
        index.assign(id(2), at(T0 + 1), &article(8));
        index.restore(
            id(3),
            at(T0 + 2),
            &Fingerprint::of_article("", &body),
            id(3),
        );
        // The text with two words changed is like both, most like the second.
        let edited = replaced(70, 72, 71);
        let linked = index.assign(id(4), at(T0 + 3), &edited);
        assert_eq!(linked.duplicate_of, Some(id(3)), "{linked:?}");
        assert_eq!(linked.story_id, id(3));
        assert!(
            linked.similarity > 0.9 && linked.similarity < 1.0,
            "{linked:?}"
        );
        let to_first = edited.similarity(&rewritten_end);
        assert!(
            to_first >= DEFAULT_THRESHOLD && to_first < linked.similarity,
            "{to_first}"
        );
    }

    #[test]
    fn the_threshold_and_the_window_bound_links() {
        let never = StoryConfig {
            threshold: 1.01,
            ..StoryConfig::default()
        };
        let mut index = StoryIndex::new(never);
        index.assign(id(1), at(T0), &article(1));
        assert_eq!(
            index.assign(id(2), at(T0), &article(1)),
            Assignment::alone(id(2))
        );

        let mut index = StoryIndex::default();
        index.assign(id(1), at(T0), &article(1));
        // Published more than the window after: not linked (and the first is evicted).
        let late = index.assign(id(2), at(T0 + 7 * DAY + 1), &article(1));
        assert_eq!(late, Assignment::alone(id(2)));
        assert!(!index.contains(id(1)));
        // Published earlier than a held article but within the window: linked, both ways.
        let early = index.assign(id(3), at(T0 + 2), &article(1));
        assert_eq!(early.duplicate_of, Some(id(2)));
    }

    #[test]
    fn entries_older_than_the_window_are_evicted() {
        let config = StoryConfig {
            window: Duration::from_secs(2 * DAY as u64),
            ..StoryConfig::default()
        };
        let mut index = StoryIndex::new(config);
        for n in 0..10 {
            index.assign(id(n), at(T0 + n as i64 * DAY / 2), &article(n));
        }
        // The newest is at 4.5 days: those before 2.5 days are gone.
        assert_eq!(index.newest(), Some(at(T0 + 9 * DAY / 2)));
        assert_eq!(index.len(), 5);
        assert!((0..5).all(|n| !index.contains(id(n))));
        assert!((5..10).all(|n| index.contains(id(n))));
        // An article older than the window is assigned, then not held.
        let stale = index.assign(id(20), at(T0), &article(9));
        assert_eq!(stale, Assignment::alone(id(20)));
        // Time moves on without an article: everything goes.
        index.advance(at(T0 + 30 * DAY));
        assert!(index.is_empty());
        // A copy of an evicted article starts its own story.
        let copy = index.assign(id(21), at(T0 + 30 * DAY), &article(9));
        assert_eq!(copy, Assignment::alone(id(21)));
    }

    #[test]
    fn a_removed_article_is_forgotten() {
        let mut index = StoryIndex::default();
        index.assign(id(1), at(T0), &article(1));
        let copy = index.assign(id(2), at(T0 + 1), &article(1));
        assert_eq!(copy.story_id, id(1));
        assert!(index.remove(id(1)));
        assert!(!index.remove(id(1)));
        assert!(!index.contains(id(1)));
        // The copy stays in the first article's story; a third copy is linked to it.
        let third = index.assign(id(3), at(T0 + 2), &article(1));
        assert_eq!(third.duplicate_of, Some(id(2)));
        assert_eq!(third.story_id, id(1));
        assert!(index.remove(id(2)) && index.remove(id(3)));
        assert!(index.is_empty());
        assert_eq!(
            index.assign(id(4), at(T0 + 3), &article(1)),
            Assignment::alone(id(4))
        );
    }

    #[test]
    fn an_updated_article_is_assigned_again() {
        let mut index = StoryIndex::default();
        index.assign(id(1), at(T0), &article(1));
        index.assign(id(2), at(T0 + 1), &article(2));
        let copy = index.assign(id(3), at(T0 + 2), &article(1));
        assert_eq!(copy.story_id, id(1));

        // Still the same text: it keeps its story.
        let same = index.update(id(3), at(T0 + 2), &article(1));
        assert_eq!(same.story_id, id(1));
        assert_eq!(same.duplicate_of, Some(id(1)));
        // Rewritten as a copy of the second article: it joins that story.
        let moved = index.update(id(3), at(T0 + 2), &article(2));
        assert_eq!(moved.story_id, id(2));
        assert_eq!(moved.duplicate_of, Some(id(2)));
        assert_eq!(index.story_of(id(3)), Some(id(2)));
        // Rewritten as something new: it starts its own story.
        let alone = index.update(id(3), at(T0 + 2), &article(3));
        assert_eq!(alone, Assignment::alone(id(3)));
        assert_eq!(index.len(), 3);
        // assign of a held article is an update; update of an unknown one is an assignment.
        assert_eq!(index.assign(id(3), at(T0 + 2), &article(1)).story_id, id(1));
        assert_eq!(index.len(), 3);
        assert_eq!(index.update(id(4), at(T0 + 3), &article(2)).story_id, id(2));
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn an_update_prefers_its_own_story() {
        let mut index = StoryIndex::default();
        // Two stories with the same text (the second came after the first was evicted and
        // restored elsewhere): the third article is in the second story.
        index.restore(id(1), at(T0), &article(1), id(1));
        index.restore(id(2), at(T0 + 1), &article(1), id(2));
        index.restore(id(3), at(T0 + 2), &article(5), id(2));
        // Updated to the shared text, it stays in its own story although the first is older.
        let updated = index.update(id(3), at(T0 + 2), &article(1));
        assert_eq!(updated.story_id, id(2));
        assert_eq!(updated.duplicate_of, Some(id(2)));
        // A new article with that text goes to the earliest filed.
        assert_eq!(
            index.assign(id(4), at(T0 + 3), &article(1)).duplicate_of,
            Some(id(1))
        );
    }

    #[test]
    fn empty_texts_are_never_linked() {
        let mut index = StoryIndex::default();
        let empty = Fingerprint::of_article("", "");
        assert_eq!(
            index.assign(id(1), at(T0), &empty),
            Assignment::alone(id(1))
        );
        assert_eq!(
            index.assign(id(2), at(T0), &empty),
            Assignment::alone(id(2))
        );
        assert_eq!(index.len(), 2);
        assert!(index.remove(id(1)));
    }

    /// What one call of a [`scenario`] filed: the article, its `published_at`, the text it was
    /// given and where it went.
    type Filed = (ArticleId, Timestamp, u64, Assignment);

    /// A run of assignments, updates, removals and time passing over texts that copy each
    /// other; returns every assignment.
    fn scenario(index: &mut StoryIndex, calls: u64) -> Vec<Filed> {
        let mut out = Vec::new();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in 0..calls {
            let when = at(T0 + (n as i64) * DAY / 8);
            let text = next() % 12;
            match next() % 10 {
                0 if n > 0 => {
                    index.remove(id(next() % n));
                }
                1 if n > 0 => {
                    let target = id(next() % n);
                    if index.contains(target) {
                        let assignment = index.update(target, when, &article(text));
                        out.push((target, when, text, assignment));
                    }
                }
                _ => out.push((id(n), when, text, index.assign(id(n), when, &article(text)))),
            }
        }
        out
    }

    #[test]
    fn assignment_is_deterministic() {
        let mut a = StoryIndex::default();
        let mut b = StoryIndex::default();
        let first = scenario(&mut a, 300);
        let second = scenario(&mut b, 300);
        assert_eq!(first, second);
        // Copies were found, stories span several articles, and eviction happened.
        assert!(first.iter().filter(|f| f.3.duplicate_of.is_some()).count() > 100);
        assert!(a.len() < 300 && a.len() == b.len());
        assert_eq!(a.memory_bytes(), b.memory_bytes());
    }

    #[test]
    fn a_rebuilt_index_assigns_as_the_original_would() {
        let mut original = StoryIndex::default();
        let history = scenario(&mut original, 200);
        // What a store keeps: for each live article, its last version, in the order written.
        let mut last: Vec<Filed> = Vec::new();
        for filed in history {
            last.retain(|f| f.0 != filed.0);
            last.push(filed);
        }
        let mut rebuilt = StoryIndex::default();
        for (article, published_at, text, assignment) in &last {
            // Removed or evicted articles are not replayed (an evicted one would be evicted
            // again at once).
            if original.contains(*article) {
                let fingerprint = Fingerprint::from_bytes(&article_bytes(*text)).expect("valid");
                rebuilt.restore(*article, *published_at, &fingerprint, assignment.story_id);
            }
        }
        rebuilt.advance(original.newest().expect("articles were seen"));
        assert_eq!(rebuilt.len(), original.len());
        for n in 0..40u64 {
            let when = at(T0 + 25 * DAY + n as i64 * 600);
            let text = n % 14;
            let a = original.assign(id(10_000 + n), when, &article(text));
            let b = rebuilt.assign(id(10_000 + n), when, &article(text));
            assert_eq!(a, b, "article {n}");
        }
    }

    #[test]
    fn memory_is_accounted_per_entry() {
        let mut index = StoryIndex::default();
        let empty = index.memory_bytes();
        for n in 0..2_000 {
            index.assign(id(n), at(T0 + n as i64), &article(n));
        }
        let per_entry = (index.memory_bytes() - empty) / 2_000;
        // The sketch (512 bytes), the postings (12 bytes per key) and the entry itself.
        assert!(
            (800..1_400).contains(&per_entry),
            "{per_entry} bytes per entry"
        );
    }
}
