-- envpatrol storage, version 1: readings, per-cell rollups, vehicles, dead letters.
-- The marker /*READING_PARTITIONING*/ becomes `PARTITION BY RANGE (time)` on plain PostgreSQL and
-- nothing on TimescaleDB, where 0001_core.timescale.sql makes the table a hypertable instead.

CREATE TABLE reading (
    vehicle        text             NOT NULL,
    seq            bigint           NOT NULL,
    time           timestamptz      NOT NULL,
    received_at    timestamptz      NOT NULL DEFAULT now(),
    time_source    text             NOT NULL CHECK (time_source IN ('gnss', 'host')),
    lat            double precision,
    lon            double precision,
    fix_valid      boolean,
    fix_quality    smallint,
    satellites     smallint,
    hdop           real,
    speed_mps      real,
    course_deg     real,
    fix_age_s      real,
    cell           bigint,          -- H3 cell at the configured resolution (meta.h3_resolution)
    profile        text             NOT NULL,
    flags          text[]           NOT NULL DEFAULT '{}',
    channel_flags  jsonb            NOT NULL DEFAULT '{}',
    temperature    double precision,
    humidity       double precision,
    noise          double precision,
    pm25           double precision,
    pm10           double precision,
    co2            double precision,
    o3             double precision,
    no2            double precision,
    so2            double precision,
    co             double precision,
    hcho           double precision,
    tvoc           double precision,
    odor           double precision,
    cooking_fume   double precision,
    pollen         double precision,
    -- A redelivered reading has the same vehicle, seq and time and is stored once.
    PRIMARY KEY (vehicle, seq, time)
) /*READING_PARTITIONING*/;

CREATE INDEX reading_time_idx ON reading (time);
CREATE INDEX reading_cell_time_idx ON reading (cell, time);
CREATE INDEX reading_vehicle_time_idx ON reading (vehicle, time);

-- Hourly per-cell, per-channel sums over readings with a valid fix and an unflagged value,
-- maintained by the ingest for every reading it newly stores.
CREATE TABLE cell_rollup (
    resolution  smallint          NOT NULL,
    cell        bigint            NOT NULL,
    bucket      timestamptz       NOT NULL,
    channel     text              NOT NULL,
    n           integer           NOT NULL,
    sum         double precision  NOT NULL,
    sumsq       double precision  NOT NULL,
    min         double precision  NOT NULL,
    max         double precision  NOT NULL,
    energy_sum  double precision,  -- sum of 10^(L/10), for logarithmic channels (noise)
    PRIMARY KEY (resolution, channel, bucket, cell)
);
CREATE INDEX cell_rollup_cell_idx ON cell_rollup (resolution, cell, channel, bucket);

CREATE TABLE vehicle (
    vehicle      text PRIMARY KEY,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),  -- when the ingest last heard of it
    last_seq     bigint,
    last_time    timestamptz,                          -- time of its newest reading
    last_lat     double precision,
    last_lon     double precision,
    state        text,                                 -- online / offline, from its status topic
    status       jsonb,
    status_at    timestamptz,
    health       jsonb,
    health_at    timestamptz
);

CREATE TABLE dead_letter (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text        NOT NULL,
    reason       text        NOT NULL,
    detail       text        NOT NULL,
    payload      bytea       NOT NULL
);
CREATE INDEX dead_letter_reason_idx ON dead_letter (reason, received_at);

CREATE TABLE meta (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
