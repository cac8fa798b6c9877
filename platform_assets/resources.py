"""The resources the platform assets use, and the one place the SSH resource is built from the
inventory."""

import dagster as dg

from platform_assets.inventory import Inventory, load_inventory
from resources.ssh import SshResource


class InventoryFile(dg.ConfigurableResource):
    """The inventory file, and whether this profile may contact non-loopback nodes."""

    path: str
    # False in the local profile: only loopback nodes (the fake-Pi cluster) are contacted.
    allow_remote_nodes: bool = False

    def load(self) -> Inventory:
        return load_inventory(self.path)


class K3sToken(dg.ConfigurableResource):
    """The K3s join token, from the variable the inventory's `k3s.token_env` names (dg.EnvVar).

    Empty when the variable is not set: plans still work, applying K3s refuses.
    """

    token: str = ""


def ssh_resource(inv: Inventory) -> SshResource:
    """The SSH resource for the inventory's nodes, with its `ssh:` settings."""
    return SshResource(
        known_hosts_path=inv.ssh.known_hosts_path,
        private_key_path=inv.ssh.private_key_path,
        connect_timeout_s=inv.ssh.connect_timeout_s,
        command_timeout_s=inv.ssh.command_timeout_s,
        max_parallel=inv.ssh.max_parallel,
    )
