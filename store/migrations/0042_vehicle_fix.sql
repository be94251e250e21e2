-- envpatrol storage, version 42: a vehicle's position comes from GNSS time alone.
-- The vehicle row took its newest reading, position included, by reading time. A reading dated
-- by a host clock that was off (a gateway without RTC, before its first fix) could stand ahead of
-- every GNSS-dated reading and hold the row for as long as it did: no position, an old seq.
-- Now the position is that of the newest reading with a valid fix and a GNSS time, with that time
-- beside it (last_fix_time), and a reading dated by GNSS time ranks above any dated by the host
-- for last_seq and last_time (last_time_source says which it is). last_seen, the ingest's own
-- clock, tells whether the vehicle is alive.

ALTER TABLE vehicle
    ADD COLUMN last_time_source text,
    ADD COLUMN last_fix_time timestamptz;

COMMENT ON COLUMN vehicle.last_time_source IS
    'time_source of the reading last_seq and last_time are from: gnss ranks above host; NULL before version 42.';
COMMENT ON COLUMN vehicle.last_fix_time IS
    'GNSS time of the reading last_lat and last_lon are from (NULL before version 42: the next fix replaces them).';
