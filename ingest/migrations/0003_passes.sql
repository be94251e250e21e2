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
    PRIMARY KEY (resolution, vehicle, start_time, first_seq)
);
CREATE INDEX pass_cell_idx ON pass (resolution, cell, start_time);
CREATE INDEX pass_time_idx ON pass (resolution, start_time);

-- Per-channel statistics of a pass, over the values that may count (no channel flag, no excluded
-- reading flag). A channel without such a value in the pass has no row.
CREATE TABLE pass_stat (
    resolution   smallint          NOT NULL,
    vehicle      text              NOT NULL,
    start_time   timestamptz       NOT NULL,
    first_seq    bigint            NOT NULL,
    channel      text              NOT NULL,
    cell         bigint            NOT NULL,
    end_time     timestamptz       NOT NULL,
    n            integer           NOT NULL,
    mean         double precision  NOT NULL,
    min          double precision  NOT NULL,
    max          double precision  NOT NULL,
    energy_mean  double precision,  -- 10*log10(mean(10^(L/10))), logarithmic channels (noise)
    PRIMARY KEY (resolution, vehicle, start_time, first_seq, channel)
);
CREATE INDEX pass_stat_channel_idx ON pass_stat (resolution, channel, start_time);

-- The longest gap between two track points of one pass; changed only by `envpatrol rebuild`.
INSERT INTO meta (key, value) VALUES ('pass_gap_s', '120') ON CONFLICT (key) DO NOTHING;
