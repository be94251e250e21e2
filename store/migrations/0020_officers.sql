-- Officer-owned tables: API keys, management grids and cases. The ingest never writes them; the
-- API writes them only through its admin connection (role envpatrol_officer), and reads them,
-- like everything else, as envpatrol_reader.

CREATE TABLE api_key (
    key_id      text        PRIMARY KEY,          -- the public prefix of the key, e.g. 'k3f9a2c1d'
    name        text        NOT NULL,             -- who or what holds it
    role        text        NOT NULL CHECK (role IN ('read', 'admin')),
    secret_hash text        NOT NULL,             -- hex sha256 of the whole key; the key is never stored
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- A sub-district's management grids (wangge): polygons in WGS-84, each with a responsible person.
CREATE TABLE management_grid (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL UNIQUE,
    responsible  text        NOT NULL,
    geometry     jsonb       NOT NULL,            -- GeoJSON Polygon or MultiPolygon
    west         double precision NOT NULL,       -- its bounding box, for a cheap first test
    south        double precision NOT NULL,
    east         double precision NOT NULL,
    north        double precision NOT NULL,
    properties   jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A hotspot an officer acts on: open -> dispatched -> treated -> verified -> closed.
CREATE TABLE hotspot_case (
    id            bigserial   PRIMARY KEY,
    pollutant     text        NOT NULL,
    cell          text        NOT NULL,           -- H3 index of the hotspot's (peak) cell
    lat           double precision NOT NULL,      -- the cell's centre
    lon           double precision NOT NULL,
    grid_id       bigint      REFERENCES management_grid (id) ON DELETE SET NULL,
    title         text        NOT NULL,
    status        text        NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'dispatched', 'treated', 'verified', 'closed')),
    hotspot       jsonb       NOT NULL DEFAULT '{}', -- the hotspot as it was when the case opened
    treated_at    timestamptz,
    verification  jsonb,                          -- the last before/after result
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hotspot_case_status_idx ON hotspot_case (status, updated_at);
CREATE INDEX hotspot_case_cell_idx ON hotspot_case (cell);

-- Everything that happened to a case, oldest first: creation, status changes, notes, verifications.
CREATE TABLE case_event (
    id          bigserial   PRIMARY KEY,
    case_id     bigint      NOT NULL REFERENCES hotspot_case (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text        NOT NULL CHECK (kind IN ('created', 'status', 'note', 'verification')),
    from_status text,
    to_status   text,
    note        text,
    detail      jsonb,
    actor       text        NOT NULL
);
CREATE INDEX case_event_case_idx ON case_event (case_id, id);

-- envpatrol_officer: the API's admin connection. It reads everything and writes only these tables.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_officer') THEN
        CREATE ROLE envpatrol_officer LOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create role envpatrol_officer: %', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_officer') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO envpatrol_officer', current_database());
        GRANT USAGE ON SCHEMA public TO envpatrol_officer;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO envpatrol_officer;
        GRANT INSERT, UPDATE, DELETE ON api_key, management_grid, hotspot_case, case_event
            TO envpatrol_officer;
        GRANT USAGE ON SEQUENCE management_grid_id_seq, hotspot_case_id_seq, case_event_id_seq
            TO envpatrol_officer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_reader') THEN
        GRANT SELECT ON api_key, management_grid, hotspot_case, case_event TO envpatrol_reader;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_writer') THEN
        GRANT SELECT ON api_key, management_grid, hotspot_case, case_event TO envpatrol_writer;
    END IF;
END
$$;
