-- Chat moderation: moderators, bans and timeouts (a ban with an expiry), room modes, and
-- the log of moderators' actions that channel owners read.
CREATE TABLE channel_moderators (
    channel_id BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) STRICT;

CREATE TABLE channel_bans (
    channel_id BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL: banned until lifted; otherwise a timeout ending then.
    expires_at INTEGER,
    reason     TEXT,
    created_by BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) STRICT;

CREATE TABLE chat_settings (
    channel_id             BLOB    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    slow_mode_secs         INTEGER NOT NULL DEFAULT 0,
    followers_only_minutes INTEGER,
    updated_at             INTEGER NOT NULL
) STRICT;

CREATE TABLE moderation_log (
    id             BLOB    PRIMARY KEY NOT NULL,
    channel_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    moderator_id   BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    action         TEXT    NOT NULL,
    target_user_id BLOB,
    message_id     BLOB,
    details        TEXT,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX moderation_log_channel_created ON moderation_log (channel_id, created_at, id);
