-- envpatrol storage, version 3: passes.
-- A pass is a vehicle's contiguous visit to one cell (see ingest/passes.py for the rule). The
-- ingest maintains passes at the current analysis resolution for every batch, recomputing the
-- affected stretch of each vehicle's track, so late and out-of-order readings land in the right
-- pass. `envpatrol rebuild` recomputes them all from the stored readings.

CREATE TABLE pass (
    resolution  smallint     NOT NULL,
    vehicle     text         NOT NULL,
    start_time  timestamptz  NOT NULL,  -- time of its first track point
    first_seq   bigint       NOT NULL,  -- seq of that point (two passes may start at one instant)
    end_time    timestamptz  NOT NULL,
    last_seq    bigint       NOT NULL,
    cell        bigint       NOT NULL,
    readings    integer      NOT NULL,  -- track points, counted in the statistics or not
    -- Per channel, over the values that count (no channel flag, no excluded reading flag):
    -- {"pm25": [n, mean, min, max, null], "noise": [n, mean, min, max, energy_mean], ...}.
    -- One row per pass keeps the per-batch upkeep to one row per vehicle; pass_stat below is the
    -- same data one row per channel, for SQL.
    stats       jsonb        NOT NULL DEFAULT '{}',
    PRIMARY KEY (resolution, vehicle, start_time, first_seq)
) WITH (fillfactor = 70);  -- room on each page for in-place (HOT) updates as passes grow
CREATE INDEX pass_cell_idx ON pass (resolution, cell, start_time);
CREATE INDEX pass_time_idx ON pass (resolution, start_time);

-- Per-channel statistics of a pass. A channel without a countable value in the pass has no row.
-- energy_mean is 10*log10(mean(10^(L/10))), for logarithmic channels (noise).
CREATE VIEW pass_stat AS
SELECT p.resolution, p.vehicle, p.start_time, p.first_seq, s.key AS channel, p.cell, p.end_time,
       (s.value->>0)::integer AS n,
       (s.value->>1)::double precision AS mean,
       (s.value->>2)::double precision AS min,
       (s.value->>3)::double precision AS max,
       (s.value->>4)::double precision AS energy_mean
FROM pass p CROSS JOIN LATERAL jsonb_each(p.stats) AS s(key, value);

-- The longest gap between two track points of one pass; changed only by `envpatrol rebuild`.
INSERT INTO meta (key, value) VALUES ('pass_gap_s', '120') ON CONFLICT (key) DO NOTHING;
