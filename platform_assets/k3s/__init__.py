"""K3s: the pinned server and agents, config, token file and unit (facts.py, plan.py, apply.py)."""
