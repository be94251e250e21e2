"""envpatrol hotspots: the hotspot analysis, its job, and the results it stores.

`hotspots.analysis` is the pure method (numpy, scipy, esda); the job reads passes from the store,
runs the method and writes runs and evidence that the API reads through `hotspots.results` and
`hotspots.evidence`. The web process imports only those readers, never the method's statistics.
"""
