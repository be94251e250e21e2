-- Plain PostgreSQL: daily partitions of `reading`, named reading_pYYYYMMDD, covering UTC days.
-- Creating or dropping a partition needs ownership of `reading`; these two functions run with the
-- owner's rights (SECURITY DEFINER) so the ingest's writer role can call them and needs no more.

CREATE FUNCTION envpatrol_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
-- The partition for `day`; true when it had to be made. Readings of that day that are already in
-- the default partition (stored before the partition existed) are moved into it.
DECLARE
    name text := 'reading_p' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('envpatrol_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;  -- another writer made it while we waited
    END IF;
    BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF reading FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
    EXCEPTION WHEN duplicate_table THEN
        -- Made by a concurrent writer that committed while we waited for the lock (the catalog
        -- lookup above may not see it yet: an advisory lock does not refresh catalog snapshots).
        RETURN false;
    WHEN check_violation THEN
        EXECUTE format('CREATE TABLE %I (LIKE reading INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       name);
        EXECUTE format('WITH moved AS (DELETE FROM reading_default WHERE time >= %L AND time < %L'
                       ' RETURNING *) INSERT INTO %I SELECT * FROM moved', lo, hi, name);
        EXECUTE format('ALTER TABLE reading ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
    END;
    RETURN true;
END
$$;

CREATE FUNCTION envpatrol_drop_partitions(before date) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
-- Retention: drops every daily partition of days before `before` (and deletes such readings from
-- the default partition); returns the names dropped. Rollups and passes are kept.
DECLARE
    part text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('envpatrol_partition'));
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'reading'::regclass AND c.relname ~ '^reading_p[0-9]{8}$'
          AND to_date(substr(c.relname, 10), 'YYYYMMDD') < before
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;
    DELETE FROM reading_default WHERE time < before::timestamp AT TIME ZONE 'UTC';
END
$$;

REVOKE ALL ON FUNCTION envpatrol_ensure_partition(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION envpatrol_drop_partitions(date) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_writer') THEN
        GRANT EXECUTE ON FUNCTION envpatrol_ensure_partition(date) TO envpatrol_writer;
        GRANT EXECUTE ON FUNCTION envpatrol_drop_partitions(date) TO envpatrol_writer;
    END IF;
END
$$;
