"""envpatrol hotspots: the hotspot analysis, its job, and the results it stores.

`hotspots.analysis` is the pure method (numpy; its statistics scipy and esda). `pass_reader`
reads a window's stored passes, `job` runs the method over them on a schedule and serves the
officers' run requests, `run_writer` stores each run, `cli` is `envpatrol analyse`. The web
process imports only the readers (`results`, `evidence`), the request side (`run_requests`) and
the before/after test (`verification`, numpy only): never the job, nor the scipy and PySAL
statistics.
"""
