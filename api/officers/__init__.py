"""The officer-owned tables (management grids, cases): SQL with bound parameters, no HTTP."""
