-- A writer role for the ingest and a read-only role for the API. Creating roles needs CREATEROLE;
-- where the migrating user lacks it, an operator creates them and the grants still apply.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_writer') THEN
        CREATE ROLE envpatrol_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_reader') THEN
        CREATE ROLE envpatrol_reader LOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create roles envpatrol_writer/envpatrol_reader: %', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_writer') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO envpatrol_writer', current_database());
        GRANT USAGE, CREATE ON SCHEMA public TO envpatrol_writer;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO envpatrol_writer;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO envpatrol_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_reader') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO envpatrol_reader', current_database());
        GRANT USAGE ON SCHEMA public TO envpatrol_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO envpatrol_reader;
    END IF;
END
$$;
