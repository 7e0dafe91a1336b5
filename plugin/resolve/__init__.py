"""DaVinci Resolve 18.5+ Workspace > Scripts integration (untested against Resolve itself).

`core` (plain functions, tested), `resolve_api` (every Resolve call), `flow` (the steps),
`python -m plugin.resolve install` (writes the launcher into Resolve's Scripts/Utility folder).
"""
