-- envpatrol storage, version 4: keeping the reading table's time slices. The work is
-- backend-specific: 0004_partitions.plain.sql (daily partitions made ahead, dropped for retention)
-- and 0004_partitions.timescale.sql (compression and retention policies on the hypertable).
COMMENT ON TABLE reading IS
    'One row per reading; (vehicle, seq, time) identifies it, so a redelivered reading is stored once.';
