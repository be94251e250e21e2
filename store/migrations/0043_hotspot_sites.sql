-- envpatrol storage, version 43: hotspot sites, an identity for a place that outlives runs.
-- A site is a pollutant and time-of-day stratum at a place (hotspots/sites.py); each run's
-- hotspot takes the site of the same pollutant and stratum it shares most cells with, among the
-- sites seen recently, or a new one. Runs are pruned; sites are not, so a shared link to a site
-- keeps working and its history spans every run kept.
CREATE TABLE hotspot_site (
    id            bigserial         PRIMARY KEY,
    pollutant     text              NOT NULL,
    stratum       text              NOT NULL,
    cells         bigint[]          NOT NULL,  -- the newest hotspot's cells (H3 integers)
    lat           double precision  NOT NULL,  -- the newest hotspot's centre
    lon           double precision  NOT NULL,
    first_run     bigint            NOT NULL,  -- run ids (the runs themselves may be pruned)
    last_run      bigint            NOT NULL,
    first_seen_at timestamptz       NOT NULL,  -- window ends of those runs
    last_seen_at  timestamptz       NOT NULL,
    runs          integer           NOT NULL DEFAULT 1  -- runs that listed it
);
CREATE INDEX hotspot_site_recent_idx ON hotspot_site (pollutant, stratum, last_seen_at);
ALTER TABLE hotspot ADD COLUMN site_id bigint REFERENCES hotspot_site (id);
CREATE INDEX hotspot_site_id_idx ON hotspot (site_id, run_id);
