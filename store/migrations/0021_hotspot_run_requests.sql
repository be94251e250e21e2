-- envpatrol storage, version 21: officers' requests for a hotspot analysis of a given window.
-- The API records a request (POST /v1/hotspot-runs, admin key); whatever runs the hotspot job
-- (api.run_requests.serve_pending) claims it, runs the analysis over that window and records
-- the run it produced. The request is answered asynchronously: clients poll the request.

CREATE TABLE hotspot_run_request (
    id            bigserial    PRIMARY KEY,
    requested_at  timestamptz  NOT NULL DEFAULT now(),
    requested_by  text         NOT NULL,  -- name and key id of the officer's API key
    window_start  timestamptz  NOT NULL,
    window_end    timestamptz  NOT NULL,
    status        text         NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'failed')),
    run_id        bigint,                 -- the run it produced (no key: runs are pruned)
    finished_at   timestamptz,
    error         text,
    CHECK (window_start < window_end)
);
CREATE INDEX hotspot_run_request_pending_idx ON hotspot_run_request (id) WHERE status = 'pending';

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_officer') THEN
        GRANT SELECT, INSERT ON hotspot_run_request TO envpatrol_officer;
        GRANT USAGE ON SEQUENCE hotspot_run_request_id_seq TO envpatrol_officer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_reader') THEN
        GRANT SELECT ON hotspot_run_request TO envpatrol_reader;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_writer') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON hotspot_run_request TO envpatrol_writer;
        GRANT USAGE ON SEQUENCE hotspot_run_request_id_seq TO envpatrol_writer;
    END IF;
END
$$;
