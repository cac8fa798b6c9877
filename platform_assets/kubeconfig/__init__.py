"""The cluster's admin kubeconfig, fetched from the K3s server and stored privately (fetch.py)."""
