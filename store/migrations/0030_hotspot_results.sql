-- envpatrol storage, version 30: results of the hotspot analysis job (api/hotspot_job.py).
-- The job runs `api.analysis.detect.detect` over the stored passes of a time window and writes
-- one run with its hotspots and their cells, so the API reads results instead of computing them
-- per request. Runs are kept (the job prunes all but the newest few) so a list an officer saw can
-- be traced to the run, window and settings that produced it.

CREATE TABLE hotspot_run (
    id            bigserial    PRIMARY KEY,
    started_at    timestamptz  NOT NULL,
    finished_at   timestamptz  NOT NULL,
    window_start  timestamptz  NOT NULL,  -- passes starting in [window_start, window_end)
    window_end    timestamptz  NOT NULL,
    resolution    smallint     NOT NULL,  -- H3 resolution of the passes and cells
    passes        integer      NOT NULL,  -- passes analysed
    vehicles      integer      NOT NULL,
    hotspots      integer      NOT NULL,
    settings      jsonb        NOT NULL,  -- every analysis setting in force (AnalysisSettings)
    method        text         NOT NULL   -- version tag of the method
);
CREATE INDEX hotspot_run_finished_idx ON hotspot_run (finished_at DESC);

-- One hotspot: adjacent labelled cells of one pollutant and time-of-day stratum. The figures are
-- those of its peak cell (see api.analysis.detect.Hotspot).
CREATE TABLE hotspot (
    run_id            bigint            NOT NULL REFERENCES hotspot_run (id) ON DELETE CASCADE,
    rank              integer           NOT NULL,  -- order of the run's list: persistent first
    pollutant         text              NOT NULL,
    unit              text              NOT NULL,
    stratum           text              NOT NULL,  -- all_day, lunch, dinner, night
    label             text              NOT NULL,  -- persistent, candidate, episodic
    reasons           jsonb             NOT NULL,  -- [{"code": ..., "detail": ...}]
    geometry          jsonb             NOT NULL,  -- GeoJSON Polygon / MultiPolygon, WGS-84
    peak_cell         bigint            NOT NULL,  -- H3 index as an integer
    lat               double precision  NOT NULL,  -- excess-weighted centre
    lon               double precision  NOT NULL,
    level             double precision  NOT NULL,  -- median pass value (energy mean for noise)
    enhancement       double precision  NOT NULL,  -- M: median over passes of E
    enhancement_low   double precision,            -- bootstrap interval of M
    enhancement_high  double precision,
    excess            double precision  NOT NULL,  -- median of E - area reference
    persistence       double precision  NOT NULL,
    delta             double precision  NOT NULL,
    passes            integer           NOT NULL,
    days              integer           NOT NULL,
    vehicles          integer           NOT NULL,
    p_magnitude       double precision,
    q_magnitude       double precision,
    gi_z              double precision,
    gi_q              double precision,
    moran_i           double precision,
    high_low_q        double precision,
    first_seen        timestamptz       NOT NULL,
    last_seen         timestamptz       NOT NULL,
    profile           jsonb             NOT NULL,  -- M of the peak cell per stratum
    band              jsonb,                       -- indicative IAQI / noise class band
    drives            jsonb             NOT NULL,  -- [{"vehicle": ..., "day": "YYYY-MM-DD"}]
    PRIMARY KEY (run_id, rank)
);
CREATE INDEX hotspot_filter_idx ON hotspot (run_id, pollutant, label, stratum);

CREATE TABLE hotspot_cell (
    run_id  bigint   NOT NULL,
    rank    integer  NOT NULL,
    cell    bigint   NOT NULL,  -- H3 index as an integer
    label   text     NOT NULL,  -- the cell's own label
    PRIMARY KEY (run_id, rank, cell),
    FOREIGN KEY (run_id, rank) REFERENCES hotspot (run_id, rank) ON DELETE CASCADE
);
CREATE INDEX hotspot_cell_cell_idx ON hotspot_cell (cell, run_id);
