-- Sessions' absolute lifetime: each refresh token carries when the login that started its
-- family happened, so refreshing stops auth.session_max_age_secs after it however often
-- the family was rotated. Existing families started at their oldest token.
ALTER TABLE refresh_tokens ADD COLUMN session_started_at INTEGER NOT NULL DEFAULT 0;
UPDATE refresh_tokens SET session_started_at = (
    SELECT MIN(f.created_at) FROM refresh_tokens f WHERE f.family_id = refresh_tokens.family_id
);
