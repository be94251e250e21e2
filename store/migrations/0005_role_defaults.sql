-- envpatrol storage, version 5: privileges that follow the schema as it grows.
-- 0002 granted on the tables that existed then. Here: the tables added since, and default
-- privileges so that every table the migrating role creates later (new migrations, and the daily
-- partitions envpatrol_ensure_partition makes with the owner's rights) is readable by the API's
-- reader and writable by the ingest's writer without another GRANT. The writer loses CREATE on the
-- schema: it makes no tables (partitions come from the SECURITY DEFINER function, staging tables
-- are temporary).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_writer') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO envpatrol_writer;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO envpatrol_writer;
        REVOKE CREATE ON SCHEMA public FROM envpatrol_writer;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO envpatrol_writer;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT USAGE ON SEQUENCES TO envpatrol_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_reader') THEN
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO envpatrol_reader;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO envpatrol_reader;
    END IF;
END
$$;
