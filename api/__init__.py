"""envpatrol API: the officers' HTTP interface over the store and the hotspot results.

Build an application with `api.app.create_app(settings)`; run it with `envpatrol api`.
"""
