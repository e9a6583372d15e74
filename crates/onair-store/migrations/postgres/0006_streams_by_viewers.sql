-- The live directory ordered by audience (GET /api/streams?sort=viewers) reads this
-- index in order: no sort, however many broadcasts are live.
CREATE INDEX streams_status_viewers ON streams (status, viewer_count, id);
