-- envpatrol storage, version 40: the per-cell map layer (/v1/cells, ingest.queries.cells) read
-- from an index alone.
-- The layer sums one channel's hourly rollups over a time range for every cell. Rollup rows of
-- one channel lie among those of every other channel (the ingest writes all channels of a batch
-- together), so reading them through the primary key visits about one heap page per row: 31,000
-- pages for a 30-day PM10 layer of a 50-vehicle fleet. With the sums in the index, and the
-- visibility map set by autovacuum, it is an index-only scan of a few hundred pages
-- (docs/performance.md, Officers' API). Cost: one more index entry for each rollup row the
-- ingest inserts or updates.

CREATE INDEX cell_rollup_channel_cover_idx ON cell_rollup (resolution, channel, bucket, cell)
    INCLUDE (n, sum, sumsq, min, max, energy_sum);
