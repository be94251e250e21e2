"""envpatrol API: the officers' HTTP interface over the store (read-only, via `ingest.queries`).

Build an application with `api.app.create_app(settings)`; run it with `envpatrol api`.
"""
