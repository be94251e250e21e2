-- envpatrol storage, version 6: one index fewer for every stored reading (plain PostgreSQL).
-- The key of `reading` was (vehicle, seq, time), beside an index on (vehicle, time) for tracks and
-- passes. A key ordered (vehicle, time, seq) identifies a reading just the same (the same columns:
-- a redelivered reading still conflicts and is stored once) and serves the (vehicle, time) range
-- scans itself, already in the (time, seq) order they want, so that index is dropped:
-- per batch, one B-tree insertion fewer per reading (docs/performance.md, Ingest).
-- TimescaleDB keeps its key and indexes: changing the key of a hypertable with compressed chunks
-- has not been tried.
COMMENT ON COLUMN reading.seq IS
    'Per-vehicle sequence number from the edge outbox; with vehicle and time it identifies a reading.';
