-- khabar schema version 4: what listings filter and order on from an article's editorial
-- metadata, copied from the current version like the other head columns. `urgency_rank` is
-- 10 - urgency (9 for the most urgent, 1 for urgency 9) and 0 when the urgency is unset, so that
-- one descending index scan lists the most urgent first, then the newest. Articles stored
-- before this version have none of it (they were stored before editorial metadata existed).
ALTER TABLE khabar.articles
    ADD COLUMN IF NOT EXISTS urgency_rank smallint NOT NULL DEFAULT 0 CHECK (urgency_rank BETWEEN 0 AND 9),
    ADD COLUMN IF NOT EXISTS genres text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS expires_s bigint,
    ADD COLUMN IF NOT EXISTS expires_ns integer;
CREATE INDEX IF NOT EXISTS articles_by_urgency ON khabar.articles (urgency_rank, published_s, published_ns, id);
