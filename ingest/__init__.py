"""envpatrol ingest: readings from the broker into PostgreSQL (TimescaleDB when available).

Depends on `edge` for the wire contract. Also holds the store's query layer the API reads with.
"""
