-- Issue 13: every broadcast with recording on becomes an archive when it ends, processed
-- asynchronously into a VOD; clips cut from archives or live broadcasts.

-- Recording is on unless the creator turns it off.
ALTER TABLE users ADD COLUMN record_broadcasts BOOLEAN NOT NULL DEFAULT TRUE;
-- Decided when a publisher attaches: the creator's setting and storage quota.
ALTER TABLE streams ADD COLUMN recording BOOLEAN NOT NULL DEFAULT FALSE;
-- Why a broadcast is not recorded although recording is on (`storage_quota_exceeded`).
ALTER TABLE streams ADD COLUMN recording_refused TEXT;

-- Title and category are the broadcast's at its end (a later edit of the broadcast does
-- not rename its archive); rows from before are given their broadcast's.
ALTER TABLE archives ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE archives ADD COLUMN category TEXT;
ALTER TABLE archives ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'unlisted', 'private'));
ALTER TABLE archives ADD COLUMN progress DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE archives ADD COLUMN failure_reason TEXT;
ALTER TABLE archives ADD COLUMN thumbnail_path TEXT;
ALTER TABLE archives ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE archives ADD COLUMN updated_at TIMESTAMPTZ;
UPDATE archives a SET updated_at = a.created_at, title = s.title, category = s.category
FROM streams s WHERE s.id = a.stream_id;
ALTER TABLE archives ALTER COLUMN updated_at SET NOT NULL;

-- One archive per broadcast: ending it twice inserts nothing the second time.
DROP INDEX archives_stream;
CREATE UNIQUE INDEX archives_stream_key ON archives (stream_id);
-- The public list shows processing archives too.
DROP INDEX archives_ready_created;
CREATE INDEX archives_listed_created ON archives (created_at, id)
    WHERE visibility = 'public' AND status IN ('processing', 'ready');
-- Retention walks archives by age.
CREATE INDEX archives_created ON archives (created_at, id);

CREATE TABLE clips (
    id             UUID             PRIMARY KEY,
    channel_id     UUID             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    clipper_id     UUID             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL for a clip of a live broadcast, or once its archive is deleted.
    archive_id     UUID             REFERENCES archives (id) ON DELETE SET NULL,
    stream_id      UUID             NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    title          TEXT             NOT NULL,
    start_secs     DOUBLE PRECISION NOT NULL,
    duration_secs  DOUBLE PRECISION NOT NULL,
    status         TEXT             NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
    video_path     TEXT,
    thumbnail_path TEXT,
    failure_reason TEXT,
    size_bytes     BIGINT           NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ      NOT NULL
);
-- A channel's clips, newest first; also its storage sum.
CREATE INDEX clips_channel_created ON clips (channel_id, created_at, id);
CREATE INDEX clips_archive ON clips (archive_id);
