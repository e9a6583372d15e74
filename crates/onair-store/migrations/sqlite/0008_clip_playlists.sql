-- A clip is an HLS VOD playlist (its edges re-encoded, the segments between them copied),
-- no longer one MP4: the column names what it holds.
ALTER TABLE clips RENAME COLUMN video_path TO playlist_path;
