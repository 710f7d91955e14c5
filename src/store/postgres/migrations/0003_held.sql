-- khabar schema version 3: versions held back (an embargo in the future, or withheld by the
-- sender) until they are released. Written so that it can be applied again to a database that
-- already has it (a rolled-back schema version number finds the table in place).
--
-- An article that was never released has an `articles` row (its natural key, so that a later
-- version finds it) with no `cursor`: reads by id, listings and stories join the log on
-- `cursor`, so they never show it. Its `version` is 0 (no version released) and, while it is
-- held, its language, tags and publication time are the held version's.
ALTER TABLE khabar.articles ALTER COLUMN cursor DROP NOT NULL;

-- At most one held version per article: a later version replaces it. `release_s`/`release_ns`
-- is the embargo time, NULL for a version withheld without a time (only a later version ends
-- that). `article` is the version as stored (khabar.v1.Article, status WITHHELD, no cursor, no
-- story); `fingerprint` its story fingerprint, to place it in its story at release.
CREATE TABLE IF NOT EXISTS khabar.held (
    article_id bytea PRIMARY KEY REFERENCES khabar.articles (id),
    version bigint NOT NULL CHECK (version > 0),
    content_hash bytea NOT NULL,
    view_count bigint NOT NULL,
    release_s bigint,
    release_ns integer,
    fingerprint bytea,
    article bytea NOT NULL,
    CHECK ((release_s IS NULL) = (release_ns IS NULL))
);
-- Releases are taken in (embargo time, article id) order.
CREATE INDEX IF NOT EXISTS held_by_release ON khabar.held (release_s, release_ns, article_id)
    WHERE release_s IS NOT NULL;
