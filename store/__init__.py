"""envpatrol store: the database's schema, its migrations and the read queries over it.

The ingest writes into the schema defined here; the hotspot analysis and the API read through it.
Nothing here knows MQTT or HTTP.
"""
