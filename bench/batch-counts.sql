-- What reading a batch's counts costs at 50,000 lines (docs/batches.md). Run against a scratch database:
--   createdb -h 127.0.0.1 -U postgres batch_counts_bench && psql -h 127.0.0.1 -U postgres -d batch_counts_bench -f bench/batch-counts.sql
-- The tables and indexes as src/Api/Batches/BatchStore.cs creates them.
\timing off
CREATE TABLE IF NOT EXISTS batch_lines (
    batch_id text NOT NULL, line integer NOT NULL, custom_id text NOT NULL, body bytea NULL, job_id text NULL,
    status text NOT NULL DEFAULT 'pending', error_code text NULL, error_message text NULL, PRIMARY KEY (batch_id, line));
CREATE INDEX IF NOT EXISTS batch_lines_job ON batch_lines (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS batch_lines_status ON batch_lines (batch_id, status);
CREATE INDEX IF NOT EXISTS batch_lines_live ON batch_lines (batch_id, line) WHERE status IN ('pending', 'queued', 'running');
TRUNCATE batch_lines;
-- 20 batches of 50,000 lines, mid-way: statuses spread over the job statuses.
INSERT INTO batch_lines (batch_id, line, custom_id, job_id, status)
SELECT 'batch_' || lpad(b::text, 32, '0'), l, 'c' || l, md5(b::text || '-' || l::text),
       (ARRAY['queued', 'running', 'succeeded', 'succeeded', 'succeeded', 'failed', 'errored', 'pending'])[1 + (l % 8)]
FROM generate_series(1, 20) b, generate_series(1, 50000) l;
VACUUM ANALYZE batch_lines;
-- GET /v1/batches/{id} of a running batch: one GROUP BY over its index entries.
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON)
SELECT batch_id, status, count(*)::int FROM batch_lines WHERE batch_id = ANY(ARRAY['batch_' || lpad('7', 32, '0')]) GROUP BY batch_id, status;
-- The completion check of a batch with live lines: stops at the first one.
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON)
SELECT 1 FROM batch_lines WHERE batch_id = 'batch_' || lpad('7', 32, '0') AND status IN ('pending', 'queued', 'running') LIMIT 1;
-- The ledger sink's update for 500 jobs (none of them moves: the lookup cost).
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON)
SELECT l.batch_id FROM batch_lines l JOIN unnest((SELECT array_agg(md5('7-' || g::text)) FROM generate_series(1, 500) g)) AS u(job_id) ON l.job_id = u.job_id;
