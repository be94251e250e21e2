-- TimescaleDB: one-day chunks.
SELECT create_hypertable('reading', by_range('time', INTERVAL '1 day'));
