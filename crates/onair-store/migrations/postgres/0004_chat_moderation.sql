-- Chat moderation: moderators, bans and timeouts (a ban with an expiry), room modes, and
-- the log of moderators' actions that channel owners read.
CREATE TABLE channel_moderators (
    channel_id UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE channel_bans (
    channel_id UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL: banned until lifted; otherwise a timeout ending then.
    expires_at TIMESTAMPTZ,
    reason     TEXT,
    created_by UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE chat_settings (
    channel_id             UUID        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    slow_mode_secs         INTEGER     NOT NULL DEFAULT 0,
    followers_only_minutes INTEGER,
    updated_at             TIMESTAMPTZ NOT NULL
);

CREATE TABLE moderation_log (
    id             UUID        PRIMARY KEY,
    channel_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    moderator_id   UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    action         TEXT        NOT NULL,
    target_user_id UUID,
    message_id     UUID,
    details        TEXT,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX moderation_log_channel_created ON moderation_log (channel_id, created_at, id);
