-- Plain PostgreSQL: readings outside every daily partition land here until a partition exists.
CREATE TABLE reading_default PARTITION OF reading DEFAULT;
