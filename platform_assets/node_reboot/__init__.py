"""Reboots where the new boot command line is not active yet (facts.py, plan.py, apply.py)."""
