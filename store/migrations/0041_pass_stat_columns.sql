-- envpatrol storage, version 41: the statistics of a pass in columns of their own.
-- Until now each pass held them as one jsonb, {"pm25": [n, mean, min, max, null], ...}. Every
-- number the ingest wrote into it, or read back to extend a pass, went through numeric and back:
-- for a backlog of 50-reading messages about a third of the pass statement's time (docs/
-- performance.md, Ingest). Now, per channel: <channel>_n, the number of values that count (0:
-- none; the other columns are then NULL), <channel>_mean, _min and _max, and for logarithmic
-- channels (noise) <channel>_energy, the energy mean 10*log10(mean(10^(L/10))). The view pass_stat
-- keeps its shape: one row per pass and channel with a value.

DROP VIEW pass_stat;

ALTER TABLE pass
    ADD COLUMN temperature_n integer NOT NULL DEFAULT 0,
    ADD COLUMN temperature_mean double precision,
    ADD COLUMN temperature_min double precision,
    ADD COLUMN temperature_max double precision,
    ADD COLUMN humidity_n integer NOT NULL DEFAULT 0,
    ADD COLUMN humidity_mean double precision,
    ADD COLUMN humidity_min double precision,
    ADD COLUMN humidity_max double precision,
    ADD COLUMN noise_n integer NOT NULL DEFAULT 0,
    ADD COLUMN noise_mean double precision,
    ADD COLUMN noise_min double precision,
    ADD COLUMN noise_max double precision,
    ADD COLUMN noise_energy double precision,
    ADD COLUMN pm25_n integer NOT NULL DEFAULT 0,
    ADD COLUMN pm25_mean double precision,
    ADD COLUMN pm25_min double precision,
    ADD COLUMN pm25_max double precision,
    ADD COLUMN pm10_n integer NOT NULL DEFAULT 0,
    ADD COLUMN pm10_mean double precision,
    ADD COLUMN pm10_min double precision,
    ADD COLUMN pm10_max double precision,
    ADD COLUMN co2_n integer NOT NULL DEFAULT 0,
    ADD COLUMN co2_mean double precision,
    ADD COLUMN co2_min double precision,
    ADD COLUMN co2_max double precision,
    ADD COLUMN o3_n integer NOT NULL DEFAULT 0,
    ADD COLUMN o3_mean double precision,
    ADD COLUMN o3_min double precision,
    ADD COLUMN o3_max double precision,
    ADD COLUMN no2_n integer NOT NULL DEFAULT 0,
    ADD COLUMN no2_mean double precision,
    ADD COLUMN no2_min double precision,
    ADD COLUMN no2_max double precision,
    ADD COLUMN so2_n integer NOT NULL DEFAULT 0,
    ADD COLUMN so2_mean double precision,
    ADD COLUMN so2_min double precision,
    ADD COLUMN so2_max double precision,
    ADD COLUMN co_n integer NOT NULL DEFAULT 0,
    ADD COLUMN co_mean double precision,
    ADD COLUMN co_min double precision,
    ADD COLUMN co_max double precision,
    ADD COLUMN hcho_n integer NOT NULL DEFAULT 0,
    ADD COLUMN hcho_mean double precision,
    ADD COLUMN hcho_min double precision,
    ADD COLUMN hcho_max double precision,
    ADD COLUMN tvoc_n integer NOT NULL DEFAULT 0,
    ADD COLUMN tvoc_mean double precision,
    ADD COLUMN tvoc_min double precision,
    ADD COLUMN tvoc_max double precision,
    ADD COLUMN odor_n integer NOT NULL DEFAULT 0,
    ADD COLUMN odor_mean double precision,
    ADD COLUMN odor_min double precision,
    ADD COLUMN odor_max double precision,
    ADD COLUMN cooking_fume_n integer NOT NULL DEFAULT 0,
    ADD COLUMN cooking_fume_mean double precision,
    ADD COLUMN cooking_fume_min double precision,
    ADD COLUMN cooking_fume_max double precision,
    ADD COLUMN pollen_n integer NOT NULL DEFAULT 0,
    ADD COLUMN pollen_mean double precision,
    ADD COLUMN pollen_min double precision,
    ADD COLUMN pollen_max double precision;

UPDATE pass SET
    temperature_n = coalesce((stats -> 'temperature' ->> 0)::integer, 0),
    temperature_mean = (stats -> 'temperature' ->> 1)::double precision,
    temperature_min = (stats -> 'temperature' ->> 2)::double precision,
    temperature_max = (stats -> 'temperature' ->> 3)::double precision,
    humidity_n = coalesce((stats -> 'humidity' ->> 0)::integer, 0),
    humidity_mean = (stats -> 'humidity' ->> 1)::double precision,
    humidity_min = (stats -> 'humidity' ->> 2)::double precision,
    humidity_max = (stats -> 'humidity' ->> 3)::double precision,
    noise_n = coalesce((stats -> 'noise' ->> 0)::integer, 0),
    noise_mean = (stats -> 'noise' ->> 1)::double precision,
    noise_min = (stats -> 'noise' ->> 2)::double precision,
    noise_max = (stats -> 'noise' ->> 3)::double precision,
    noise_energy = (stats -> 'noise' ->> 4)::double precision,
    pm25_n = coalesce((stats -> 'pm25' ->> 0)::integer, 0),
    pm25_mean = (stats -> 'pm25' ->> 1)::double precision,
    pm25_min = (stats -> 'pm25' ->> 2)::double precision,
    pm25_max = (stats -> 'pm25' ->> 3)::double precision,
    pm10_n = coalesce((stats -> 'pm10' ->> 0)::integer, 0),
    pm10_mean = (stats -> 'pm10' ->> 1)::double precision,
    pm10_min = (stats -> 'pm10' ->> 2)::double precision,
    pm10_max = (stats -> 'pm10' ->> 3)::double precision,
    co2_n = coalesce((stats -> 'co2' ->> 0)::integer, 0),
    co2_mean = (stats -> 'co2' ->> 1)::double precision,
    co2_min = (stats -> 'co2' ->> 2)::double precision,
    co2_max = (stats -> 'co2' ->> 3)::double precision,
    o3_n = coalesce((stats -> 'o3' ->> 0)::integer, 0),
    o3_mean = (stats -> 'o3' ->> 1)::double precision,
    o3_min = (stats -> 'o3' ->> 2)::double precision,
    o3_max = (stats -> 'o3' ->> 3)::double precision,
    no2_n = coalesce((stats -> 'no2' ->> 0)::integer, 0),
    no2_mean = (stats -> 'no2' ->> 1)::double precision,
    no2_min = (stats -> 'no2' ->> 2)::double precision,
    no2_max = (stats -> 'no2' ->> 3)::double precision,
    so2_n = coalesce((stats -> 'so2' ->> 0)::integer, 0),
    so2_mean = (stats -> 'so2' ->> 1)::double precision,
    so2_min = (stats -> 'so2' ->> 2)::double precision,
    so2_max = (stats -> 'so2' ->> 3)::double precision,
    co_n = coalesce((stats -> 'co' ->> 0)::integer, 0),
    co_mean = (stats -> 'co' ->> 1)::double precision,
    co_min = (stats -> 'co' ->> 2)::double precision,
    co_max = (stats -> 'co' ->> 3)::double precision,
    hcho_n = coalesce((stats -> 'hcho' ->> 0)::integer, 0),
    hcho_mean = (stats -> 'hcho' ->> 1)::double precision,
    hcho_min = (stats -> 'hcho' ->> 2)::double precision,
    hcho_max = (stats -> 'hcho' ->> 3)::double precision,
    tvoc_n = coalesce((stats -> 'tvoc' ->> 0)::integer, 0),
    tvoc_mean = (stats -> 'tvoc' ->> 1)::double precision,
    tvoc_min = (stats -> 'tvoc' ->> 2)::double precision,
    tvoc_max = (stats -> 'tvoc' ->> 3)::double precision,
    odor_n = coalesce((stats -> 'odor' ->> 0)::integer, 0),
    odor_mean = (stats -> 'odor' ->> 1)::double precision,
    odor_min = (stats -> 'odor' ->> 2)::double precision,
    odor_max = (stats -> 'odor' ->> 3)::double precision,
    cooking_fume_n = coalesce((stats -> 'cooking_fume' ->> 0)::integer, 0),
    cooking_fume_mean = (stats -> 'cooking_fume' ->> 1)::double precision,
    cooking_fume_min = (stats -> 'cooking_fume' ->> 2)::double precision,
    cooking_fume_max = (stats -> 'cooking_fume' ->> 3)::double precision,
    pollen_n = coalesce((stats -> 'pollen' ->> 0)::integer, 0),
    pollen_mean = (stats -> 'pollen' ->> 1)::double precision,
    pollen_min = (stats -> 'pollen' ->> 2)::double precision,
    pollen_max = (stats -> 'pollen' ->> 3)::double precision
WHERE stats <> '{}';

ALTER TABLE pass DROP COLUMN stats;

-- Per-channel statistics of a pass. A channel without a countable value in the pass has no row.
CREATE VIEW pass_stat AS
SELECT p.resolution, p.vehicle, p.start_time, p.first_seq, s.channel, p.cell, p.end_time,
       s.n, s.mean, s.min, s.max, s.energy_mean
FROM pass p CROSS JOIN LATERAL (VALUES
    ('temperature', p.temperature_n, p.temperature_mean, p.temperature_min, p.temperature_max, NULL),
    ('humidity', p.humidity_n, p.humidity_mean, p.humidity_min, p.humidity_max, NULL),
    ('noise', p.noise_n, p.noise_mean, p.noise_min, p.noise_max, p.noise_energy),
    ('pm25', p.pm25_n, p.pm25_mean, p.pm25_min, p.pm25_max, NULL),
    ('pm10', p.pm10_n, p.pm10_mean, p.pm10_min, p.pm10_max, NULL),
    ('co2', p.co2_n, p.co2_mean, p.co2_min, p.co2_max, NULL),
    ('o3', p.o3_n, p.o3_mean, p.o3_min, p.o3_max, NULL),
    ('no2', p.no2_n, p.no2_mean, p.no2_min, p.no2_max, NULL),
    ('so2', p.so2_n, p.so2_mean, p.so2_min, p.so2_max, NULL),
    ('co', p.co_n, p.co_mean, p.co_min, p.co_max, NULL),
    ('hcho', p.hcho_n, p.hcho_mean, p.hcho_min, p.hcho_max, NULL),
    ('tvoc', p.tvoc_n, p.tvoc_mean, p.tvoc_min, p.tvoc_max, NULL),
    ('odor', p.odor_n, p.odor_mean, p.odor_min, p.odor_max, NULL),
    ('cooking_fume', p.cooking_fume_n, p.cooking_fume_mean, p.cooking_fume_min, p.cooking_fume_max, NULL),
    ('pollen', p.pollen_n, p.pollen_mean, p.pollen_min, p.pollen_max, NULL)
) AS s(channel, n, mean, min, max, energy_mean)
WHERE s.n > 0;

-- The view is new, so the grants on the old one went with it: default privileges (0005) cover
-- the reader and writer only when the same role runs the migrations; the API's officer role
-- (0020) has no default privileges at all.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['envpatrol_reader', 'envpatrol_writer', 'envpatrol_officer'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('GRANT SELECT ON pass_stat TO %I', name);
        END IF;
    END LOOP;
END
$$;
