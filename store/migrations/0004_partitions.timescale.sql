-- TimescaleDB: compression, retention and a continuous aggregate per cell and hour.
--
-- Compression: chunks are compressed segmented by vehicle (one vehicle's readings together,
-- ordered by time) once they are older than the delay. Make the delay longer than the longest
-- time a vehicle may stay offline with a full outbox: late readings still insert into compressed
-- chunks (TimescaleDB 2.11+), but slowly. Retention drops whole chunks. Both policies are set,
-- and changed, by envpatrol_set_policies() below, which the ingest calls at start with its
-- settings (compress_after_days, retention_days); the defaults here are 7 days and keep-forever.
ALTER TABLE reading SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'vehicle',
    timescaledb.compress_orderby = 'time DESC, seq DESC'
);
SELECT add_compression_policy('reading', compress_after => INTERVAL '7 days');

CREATE FUNCTION envpatrol_set_policies(compress_after interval, retain_for interval)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
-- Replaces the compression and retention policies of `reading`. retain_for NULL: keep forever.
BEGIN
    PERFORM remove_compression_policy('reading', if_exists => true);
    PERFORM add_compression_policy('reading', compress_after => compress_after);
    PERFORM remove_retention_policy('reading', if_exists => true);
    IF retain_for IS NOT NULL THEN
        PERFORM add_retention_policy('reading', drop_after => retain_for);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION envpatrol_set_policies(interval, interval) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_writer') THEN
        GRANT EXECUTE ON FUNCTION envpatrol_set_policies(interval, interval) TO envpatrol_writer;
    END IF;
END
$$;

-- Hourly per-cell sums of every channel over readings with a valid fix, no excluded reading flag
-- and an unflagged value (the same rule as cell_rollup, at the stored resolution), computed by
-- TimescaleDB. Real-time aggregation is on (materialized_only = false; off by default since
-- 2.13), so the newest hours are always included; the refresh window reaches back 30 days so a
-- vehicle's late backlog is materialized too. cell_rollup remains what ingest.queries reads (it
-- also holds other resolutions after `envpatrol rebuild`); this view serves dashboards and SQL.
CREATE MATERIALIZED VIEW cell_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    cell,
    time_bucket(INTERVAL '1 hour', time) AS bucket,
    count(temperature) FILTER (WHERE NOT channel_flags ? 'temperature') AS temperature_n,
    sum(temperature) FILTER (WHERE NOT channel_flags ? 'temperature') AS temperature_sum,
    sum(temperature * temperature) FILTER (WHERE NOT channel_flags ? 'temperature') AS temperature_sumsq,
    min(temperature) FILTER (WHERE NOT channel_flags ? 'temperature') AS temperature_min,
    max(temperature) FILTER (WHERE NOT channel_flags ? 'temperature') AS temperature_max,
    count(humidity) FILTER (WHERE NOT channel_flags ? 'humidity') AS humidity_n,
    sum(humidity) FILTER (WHERE NOT channel_flags ? 'humidity') AS humidity_sum,
    sum(humidity * humidity) FILTER (WHERE NOT channel_flags ? 'humidity') AS humidity_sumsq,
    min(humidity) FILTER (WHERE NOT channel_flags ? 'humidity') AS humidity_min,
    max(humidity) FILTER (WHERE NOT channel_flags ? 'humidity') AS humidity_max,
    count(noise) FILTER (WHERE NOT channel_flags ? 'noise') AS noise_n,
    sum(noise) FILTER (WHERE NOT channel_flags ? 'noise') AS noise_sum,
    sum(noise * noise) FILTER (WHERE NOT channel_flags ? 'noise') AS noise_sumsq,
    min(noise) FILTER (WHERE NOT channel_flags ? 'noise') AS noise_min,
    max(noise) FILTER (WHERE NOT channel_flags ? 'noise') AS noise_max,
    sum(power(10.0::float8, noise / 10.0)) FILTER (WHERE NOT channel_flags ? 'noise') AS noise_energy_sum,
    count(pm25) FILTER (WHERE NOT channel_flags ? 'pm25') AS pm25_n,
    sum(pm25) FILTER (WHERE NOT channel_flags ? 'pm25') AS pm25_sum,
    sum(pm25 * pm25) FILTER (WHERE NOT channel_flags ? 'pm25') AS pm25_sumsq,
    min(pm25) FILTER (WHERE NOT channel_flags ? 'pm25') AS pm25_min,
    max(pm25) FILTER (WHERE NOT channel_flags ? 'pm25') AS pm25_max,
    count(pm10) FILTER (WHERE NOT channel_flags ? 'pm10') AS pm10_n,
    sum(pm10) FILTER (WHERE NOT channel_flags ? 'pm10') AS pm10_sum,
    sum(pm10 * pm10) FILTER (WHERE NOT channel_flags ? 'pm10') AS pm10_sumsq,
    min(pm10) FILTER (WHERE NOT channel_flags ? 'pm10') AS pm10_min,
    max(pm10) FILTER (WHERE NOT channel_flags ? 'pm10') AS pm10_max,
    count(co2) FILTER (WHERE NOT channel_flags ? 'co2') AS co2_n,
    sum(co2) FILTER (WHERE NOT channel_flags ? 'co2') AS co2_sum,
    sum(co2 * co2) FILTER (WHERE NOT channel_flags ? 'co2') AS co2_sumsq,
    min(co2) FILTER (WHERE NOT channel_flags ? 'co2') AS co2_min,
    max(co2) FILTER (WHERE NOT channel_flags ? 'co2') AS co2_max,
    count(o3) FILTER (WHERE NOT channel_flags ? 'o3') AS o3_n,
    sum(o3) FILTER (WHERE NOT channel_flags ? 'o3') AS o3_sum,
    sum(o3 * o3) FILTER (WHERE NOT channel_flags ? 'o3') AS o3_sumsq,
    min(o3) FILTER (WHERE NOT channel_flags ? 'o3') AS o3_min,
    max(o3) FILTER (WHERE NOT channel_flags ? 'o3') AS o3_max,
    count(no2) FILTER (WHERE NOT channel_flags ? 'no2') AS no2_n,
    sum(no2) FILTER (WHERE NOT channel_flags ? 'no2') AS no2_sum,
    sum(no2 * no2) FILTER (WHERE NOT channel_flags ? 'no2') AS no2_sumsq,
    min(no2) FILTER (WHERE NOT channel_flags ? 'no2') AS no2_min,
    max(no2) FILTER (WHERE NOT channel_flags ? 'no2') AS no2_max,
    count(so2) FILTER (WHERE NOT channel_flags ? 'so2') AS so2_n,
    sum(so2) FILTER (WHERE NOT channel_flags ? 'so2') AS so2_sum,
    sum(so2 * so2) FILTER (WHERE NOT channel_flags ? 'so2') AS so2_sumsq,
    min(so2) FILTER (WHERE NOT channel_flags ? 'so2') AS so2_min,
    max(so2) FILTER (WHERE NOT channel_flags ? 'so2') AS so2_max,
    count(co) FILTER (WHERE NOT channel_flags ? 'co') AS co_n,
    sum(co) FILTER (WHERE NOT channel_flags ? 'co') AS co_sum,
    sum(co * co) FILTER (WHERE NOT channel_flags ? 'co') AS co_sumsq,
    min(co) FILTER (WHERE NOT channel_flags ? 'co') AS co_min,
    max(co) FILTER (WHERE NOT channel_flags ? 'co') AS co_max,
    count(hcho) FILTER (WHERE NOT channel_flags ? 'hcho') AS hcho_n,
    sum(hcho) FILTER (WHERE NOT channel_flags ? 'hcho') AS hcho_sum,
    sum(hcho * hcho) FILTER (WHERE NOT channel_flags ? 'hcho') AS hcho_sumsq,
    min(hcho) FILTER (WHERE NOT channel_flags ? 'hcho') AS hcho_min,
    max(hcho) FILTER (WHERE NOT channel_flags ? 'hcho') AS hcho_max,
    count(tvoc) FILTER (WHERE NOT channel_flags ? 'tvoc') AS tvoc_n,
    sum(tvoc) FILTER (WHERE NOT channel_flags ? 'tvoc') AS tvoc_sum,
    sum(tvoc * tvoc) FILTER (WHERE NOT channel_flags ? 'tvoc') AS tvoc_sumsq,
    min(tvoc) FILTER (WHERE NOT channel_flags ? 'tvoc') AS tvoc_min,
    max(tvoc) FILTER (WHERE NOT channel_flags ? 'tvoc') AS tvoc_max,
    count(odor) FILTER (WHERE NOT channel_flags ? 'odor') AS odor_n,
    sum(odor) FILTER (WHERE NOT channel_flags ? 'odor') AS odor_sum,
    sum(odor * odor) FILTER (WHERE NOT channel_flags ? 'odor') AS odor_sumsq,
    min(odor) FILTER (WHERE NOT channel_flags ? 'odor') AS odor_min,
    max(odor) FILTER (WHERE NOT channel_flags ? 'odor') AS odor_max,
    count(cooking_fume) FILTER (WHERE NOT channel_flags ? 'cooking_fume') AS cooking_fume_n,
    sum(cooking_fume) FILTER (WHERE NOT channel_flags ? 'cooking_fume') AS cooking_fume_sum,
    sum(cooking_fume * cooking_fume) FILTER (WHERE NOT channel_flags ? 'cooking_fume') AS cooking_fume_sumsq,
    min(cooking_fume) FILTER (WHERE NOT channel_flags ? 'cooking_fume') AS cooking_fume_min,
    max(cooking_fume) FILTER (WHERE NOT channel_flags ? 'cooking_fume') AS cooking_fume_max,
    count(pollen) FILTER (WHERE NOT channel_flags ? 'pollen') AS pollen_n,
    sum(pollen) FILTER (WHERE NOT channel_flags ? 'pollen') AS pollen_sum,
    sum(pollen * pollen) FILTER (WHERE NOT channel_flags ? 'pollen') AS pollen_sumsq,
    min(pollen) FILTER (WHERE NOT channel_flags ? 'pollen') AS pollen_min,
    max(pollen) FILTER (WHERE NOT channel_flags ? 'pollen') AS pollen_max
FROM reading
WHERE fix_valid AND cell IS NOT NULL
  AND NOT (flags && ARRAY['no_fix', 'stale_fix', 'stationary', 'warmup']::text[])
GROUP BY cell, time_bucket(INTERVAL '1 hour', time)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('cell_hourly',
    start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');
