"""Preflight: read-only checks of each node before anything installs (facts.py, verdicts.py)."""
