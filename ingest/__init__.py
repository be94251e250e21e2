"""envpatrol ingest: readings from the broker into PostgreSQL (TimescaleDB when available).

The write side: decode, validate, store with COPY, passes and rollups. Depends on `edge` for the
wire contract and on `store` for the schema it writes into.
"""
