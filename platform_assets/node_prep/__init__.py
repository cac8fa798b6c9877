"""Node prep: each node made ready for K3s (facts.py, plan.py, firewall.py, apply.py)."""
