-- Viewer counts, written in batches by the viewer-count flusher (never per heartbeat).
ALTER TABLE streams ADD COLUMN viewer_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN peak_viewer_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN unique_viewer_count BIGINT NOT NULL DEFAULT 0;
