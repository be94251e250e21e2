"""envpatrol store: the database's schema, its migrations and the read queries over it.

The ingest writes into the schema defined here; the hotspot analysis and the API read through it.
The reads are cut by resource (`readings`, `cells`, `passes`, `vehicles`, `health`), built from
the filters in `conditions`. Nothing here knows MQTT or HTTP, and the store imports only `edge`.
"""
