-- The publisher connection feeding a broadcast (NULL when none): attaching one is a
-- compare-and-set on this column, so a key can publish only once at a time, across nodes.
ALTER TABLE streams ADD COLUMN publisher_session UUID;
CREATE UNIQUE INDEX streams_publisher_session_key ON streams (publisher_session) WHERE publisher_session IS NOT NULL;
