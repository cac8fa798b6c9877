"""The facts -> plan -> apply engine every infrastructure step uses: commands, facts, changes,
the per-node fan-out and what a person reads about a step. It knows no step and no Dagster
asset; the steps (preflight/, node_prep/, node_reboot/, k3s/, kubeconfig/) build on it."""
