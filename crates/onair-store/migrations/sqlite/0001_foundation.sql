-- OnAir schema, SQLite dialect. Ids are UUIDv7 (16-byte BLOBs, time-ordered);
-- timestamps are INTEGER microseconds since the Unix epoch.
-- Keyset indexes end in (timestamp, id) so "(ts, id) < (?, ?) ORDER BY ts DESC, id DESC"
-- is a single index range scan; they subsume review C2's single-column indexes
-- (see docs/database.md for the mapping).

CREATE TABLE users (
    id              BLOB    PRIMARY KEY NOT NULL,
    username        TEXT    NOT NULL,
    email           TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    display_name    TEXT,
    bio             TEXT    NOT NULL DEFAULT '',
    avatar_url      TEXT,
    follower_count  INTEGER NOT NULL DEFAULT 0,
    following_count INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE refresh_tokens (
    token_hash BLOB    PRIMARY KEY NOT NULL,
    family_id  BLOB    NOT NULL,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE stream_keys (
    user_id    BLOB    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    nonce      BLOB    NOT NULL,
    key_hash   BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX stream_keys_hash_key ON stream_keys (key_hash);

CREATE TABLE streams (
    id         BLOB    PRIMARY KEY NOT NULL,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT    NOT NULL,
    category   TEXT,
    status     TEXT    NOT NULL CHECK (status IN ('offline', 'live', 'ended')),
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    updated_at INTEGER NOT NULL
) STRICT;
-- At most one active broadcast per user: a concurrent second start fails here.
CREATE UNIQUE INDEX streams_active_user_id_key ON streams (user_id) WHERE status IN ('offline', 'live');
-- Live list (C2 idx_streams_status, idx_streams_status_started, idx_streams_started_at).
CREATE INDEX streams_status_started ON streams (status, started_at, id);
-- A creator's broadcasts (C2 idx_streams_user_id).
CREATE INDEX streams_user_started ON streams (user_id, started_at, id);

CREATE TABLE follows (
    follower_id  BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    following_id BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (follower_id, following_id),
    CHECK (follower_id <> following_id)
) STRICT;
-- Followers page and go-live fan-out (C2 idx_follows_following).
CREATE INDEX follows_following_created ON follows (following_id, created_at, follower_id);
-- Following page (C2 idx_follows_follower; the primary key also starts with follower_id).
CREATE INDEX follows_follower_created ON follows (follower_id, created_at, following_id);

CREATE TABLE archives (
    id            BLOB    PRIMARY KEY NOT NULL,
    stream_id     BLOB    NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    user_id       BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status        TEXT    NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
    duration_ms   INTEGER NOT NULL DEFAULT 0,
    playlist_path TEXT,
    created_at    INTEGER NOT NULL
) STRICT;
-- C2 idx_archives_stream_id.
CREATE INDEX archives_stream ON archives (stream_id);
CREATE INDEX archives_user_created ON archives (user_id, created_at, id);
CREATE INDEX archives_ready_created ON archives (created_at, id) WHERE status = 'ready';
