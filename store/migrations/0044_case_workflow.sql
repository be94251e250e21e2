-- envpatrol storage, version 44: the grid workflow on a case (grid call -> street disposal ->
-- department check-in): who it is assigned to (a department or a grid worker), by when, and
-- photos stored with the case. Assignments and photos are events of the case's history too.
ALTER TABLE hotspot_case ADD COLUMN assignee text;
ALTER TABLE hotspot_case ADD COLUMN assignee_kind text
    CHECK (assignee_kind IN ('department', 'grid_worker'));
ALTER TABLE hotspot_case ADD COLUMN deadline timestamptz;
CREATE INDEX hotspot_case_deadline_idx ON hotspot_case (deadline) WHERE deadline IS NOT NULL;

ALTER TABLE case_event DROP CONSTRAINT case_event_kind_check;
ALTER TABLE case_event ADD CONSTRAINT case_event_kind_check
    CHECK (kind IN ('created', 'status', 'note', 'verification', 'assignment', 'attachment'));

CREATE TABLE case_attachment (
    id          bigserial   PRIMARY KEY,
    case_id     bigint      NOT NULL REFERENCES hotspot_case (id) ON DELETE CASCADE,
    name        text        NOT NULL,
    media_type  text        NOT NULL,             -- checked against the content's signature
    size        integer     NOT NULL,
    sha256      text        NOT NULL,
    content     bytea       NOT NULL,
    uploaded_by text        NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_attachment_case_idx ON case_attachment (case_id, id);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_officer') THEN
        GRANT SELECT, INSERT, DELETE ON case_attachment TO envpatrol_officer;
        GRANT USAGE ON SEQUENCE case_attachment_id_seq TO envpatrol_officer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'envpatrol_reader') THEN
        GRANT SELECT ON case_attachment TO envpatrol_reader;
    END IF;
END
$$;
