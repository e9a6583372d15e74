-- The W3C traceparent of the span that enqueued a job (NULL when tracing is off), so
-- the job's span links to the request that caused it.
ALTER TABLE jobs ADD COLUMN trace_parent TEXT;
