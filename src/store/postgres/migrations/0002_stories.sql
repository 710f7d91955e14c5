-- khabar schema version 2: canonical addresses as the natural key, and stories.
-- `canonical_uri` is filled in by khabar while it migrates (the canonical form is computed in
-- Rust); an article stored before whose canonical address an older article of its source
-- already has keeps NULL there, so the key names the older one. `story_id` is the first
-- article of the article's story (its own id for the articles stored before stories);
-- `fingerprint` is the story fingerprint of the current version, NULL when none was taken.
ALTER TABLE khabar.articles
    ADD COLUMN canonical_uri text,
    ADD COLUMN story_id bytea,
    ADD COLUMN fingerprint bytea;
UPDATE khabar.articles SET story_id = id;
ALTER TABLE khabar.articles ALTER COLUMN story_id SET NOT NULL;
ALTER TABLE khabar.articles DROP CONSTRAINT articles_natural_key;
CREATE INDEX articles_by_story ON khabar.articles (story_id, published_s, published_ns, id);
-- Writers catch up on the articles other servers changed since the last group they saw.
CREATE INDEX articles_by_cursor ON khabar.articles (cursor);
-- Whether the event's article starts its story (feeds filter on it without decoding).
ALTER TABLE khabar.events ADD COLUMN starts_story boolean NOT NULL DEFAULT true;
