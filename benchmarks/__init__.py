"""Benchmarks of pytest-homelab against its simulators: ``python -m benchmarks --help``."""
