ALTER TABLE reading DROP CONSTRAINT reading_pkey;
ALTER TABLE reading ADD CONSTRAINT reading_pkey PRIMARY KEY (vehicle, time, seq);
DROP INDEX reading_vehicle_time_idx;
