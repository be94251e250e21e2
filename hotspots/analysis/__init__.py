"""Hotspot analysis: pure functions over passes (plain data and numpy), no database, no web.

The method is described in docs/hotspots.md; every number it uses is a field of
`hotspots.analysis.settings.AnalysisSettings`. Entry point: `hotspots.analysis.detect.detect`.
"""
