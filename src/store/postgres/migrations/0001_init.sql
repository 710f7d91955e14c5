-- khabar schema version 1: articles, the log of events, the log's head and durable consumers.
-- Times are (seconds, nanoseconds) pairs since the Unix epoch, as khabar's timestamps span years
-- 0001 to 9999 with nanosecond precision. Article ids are the 16 big-endian bytes of the ULID, so
-- that byte order is id order.

CREATE TABLE khabar.schema_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version integer NOT NULL
);
INSERT INTO khabar.schema_version (version) VALUES (0);

-- The head of the log: one row that every write transaction locks first, so that writers (of
-- every khabar server on this database) take cursors one transaction at a time, in commit order.
CREATE TABLE khabar.log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    head bigint NOT NULL CHECK (head >= 0),
    -- Time of the newest event; event times never decrease along the log.
    recorded_s bigint NOT NULL,
    recorded_ns integer NOT NULL
);
INSERT INTO khabar.log_head (head, recorded_s, recorded_ns) VALUES (0, -62135596800, 0);

-- Every CREATED, UPDATED and RETRACTED event: the article right after the change, encoded as
-- khabar.v1.Article (the bytes feeds send), and the header feeds filter on.
CREATE TABLE khabar.events (
    cursor bigint PRIMARY KEY CHECK (cursor > 0),
    kind smallint NOT NULL CHECK (kind IN (1, 2, 3)),
    recorded_s bigint NOT NULL,
    recorded_ns integer NOT NULL,
    article_id bytea NOT NULL,
    version bigint NOT NULL,
    source_id text NOT NULL,
    language text NOT NULL,
    tags text[] NOT NULL,
    article bytea NOT NULL
);
CREATE INDEX events_by_time ON khabar.events (recorded_s, recorded_ns, cursor);

-- Each article's head: everything but its content, which is in the event `cursor` names.
CREATE TABLE khabar.articles (
    id bytea PRIMARY KEY CHECK (length(id) = 16),
    source_id text NOT NULL,
    uri text NOT NULL,
    language text NOT NULL,
    tags text[] NOT NULL,
    published_s bigint NOT NULL,
    published_ns integer NOT NULL,
    version bigint NOT NULL,
    status smallint NOT NULL CHECK (status IN (1, 2, 3)),
    content_hash bytea NOT NULL,
    -- The client's u64 view count, stored bit for bit.
    view_count bigint NOT NULL,
    ingested_s bigint NOT NULL,
    ingested_ns integer NOT NULL,
    first_ingested_s bigint NOT NULL,
    first_ingested_ns integer NOT NULL,
    cursor bigint NOT NULL REFERENCES khabar.events (cursor),
    CONSTRAINT articles_natural_key UNIQUE (source_id, uri)
);
CREATE INDEX articles_by_publication ON khabar.articles (published_s, published_ns, id);

CREATE TABLE khabar.consumers (
    name text PRIMARY KEY,
    acked bigint NOT NULL CHECK (acked >= 0),
    created_s bigint NOT NULL,
    created_ns integer NOT NULL,
    acked_s bigint,
    acked_ns integer
);
