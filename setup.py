"""The one native part: probes/logs/_fastlog.c, the scans a signal log line pays most for.
Optional: without a C compiler (or Python's headers) the install goes on and the Python
references in probes/logs run instead (tests/logs/test_fastlog.py fails `make test` then)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("probes.logs._fastlog", ["probes/logs/_fastlog.c"], optional=True)])
