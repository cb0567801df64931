"""The incident report: pure functions of State + acknowledgements + context (probes/report/build.py)."""
