"""`NodeSessions.run_many` (several reads in one remote shell) against the FAKE Pis' real sshd:
the same results as one channel per command, each command's own timeout, failures named.
"""

import os
import time

import pytest

from platform_assets.core.engine import ssh_targets
from platform_assets.core.facts import read_facts
from platform_assets.k3s.facts import k3s_facts
from platform_assets.node_prep.apply import node_prep_facts
from platform_assets.preflight.facts import preflight_facts
from resources.ssh import (
    CommandFailed,
    CommandTimedOut,
    RemoteCommand,
    SudoRequiresPassword,
)
from tests.fake_pi.cluster import NO_SUDO_USER
from tests.fake_pi.fixtures import ssh_resource_for, targets_for
from tests.ssh.test_ssh_resource import SECRET, _running

pytestmark = pytest.mark.service

# Outputs that a naive split would get wrong: no final newline, only newlines, nothing at all,
# a NUL, stderr and a non-zero exit, a missing file, quoting, root.
COMMANDS = (
    RemoteCommand(["printf", "no newline at the end"]),
    RemoteCommand(["printf", "\\n\\n"]),
    RemoteCommand(["true"]),
    RemoteCommand(["printf", "model\\0"]),
    RemoteCommand(["sh", "-c", "echo out; echo err >&2; printf 'last err' >&2; exit 3"]),
    RemoteCommand(["cat", "/no/such/file"]),
    RemoteCommand(["printf", "%s|", "a b", "$(id)", ";", "'q'"]),
    RemoteCommand(["id", "-u"], sudo=True),
    RemoteCommand(["cat"]),  # stdin is /dev/null, as a read's is
)


def test_run_many_returns_what_one_channel_per_command_returns(ssh_resource, ssh_targets):
    with ssh_resource.open(ssh_targets) as sessions:
        alone = [
            sessions.run("pi-agent-1", c.argv, sudo=c.sudo, check=False, stdin=b"", quiet=True)
            for c in COMMANDS
        ]
        together = sessions.run_many("pi-agent-1", COMMANDS)
    assert together == alone
    assert together[0].stdout == "no newline at the end"
    assert together[3].stdout == "model\0"
    assert (together[4].exit_code, together[4].stderr) == (3, "err\nlast err")
    assert together[7].stdout == "0\n"


def test_run_many_is_one_remote_shell(ssh_resource, ssh_targets):
    with ssh_resource.open(ssh_targets) as sessions:
        parents = sessions.run_many("pi-server", [RemoteCommand(["sh", "-c", "echo $PPID"])] * 3)
    assert len({r.stdout for r in parents}) == 1


def test_a_command_past_its_own_timeout_is_named_and_stopped(ssh_resource, ssh_targets):
    slow = ["sleep", f"28.{os.getpid()}"]  # unique to this session
    commands = [
        RemoteCommand(["true"], timeout_s=0.5),
        RemoteCommand(["sleep", "1"], timeout_s=5),  # longer than the first one's timeout
        RemoteCommand(slow, sudo=True, timeout_s=1),
        RemoteCommand(["touch", f"/tmp/never-{os.getpid()}"]),
    ]
    with ssh_resource.open(ssh_targets) as sessions:
        with pytest.raises(CommandTimedOut) as caught:
            sessions.run_many("pi-agent-2", commands)
        assert str(caught.value) == (
            f"pi-agent-2: `sudo -n -- sleep {slow[1]}` did not finish within 1s"
        )
        assert sessions.run("pi-agent-2", ["echo", "still here"]).stdout == "still here\n"
        assert sessions.connections_opened["pi-agent-2"] == 1
        # The commands after it never ran.
        never = sessions.run("pi-agent-2", ["test", "-e", f"/tmp/never-{os.getpid()}"], check=False)
        assert never.exit_code == 1
    for _ in range(100):
        if not _running(slow):
            break
        time.sleep(0.05)
    assert not _running(slow)


def test_a_shell_that_dies_half_way_names_the_command_and_host(ssh_resource, ssh_targets):
    commands = [
        RemoteCommand(["echo", "first"]),
        RemoteCommand(["sh", "-c", "echo dying >&2; kill -KILL $PPID"]),
        RemoteCommand(["echo", "never"]),
    ]
    with ssh_resource.open(ssh_targets) as sessions, pytest.raises(CommandFailed) as caught:
        sessions.run_many("pi-agent-3", commands)
    assert str(caught.value).startswith("pi-agent-3: `sh -c 'echo dying >&2; kill -KILL $PPID'`")
    assert "dying" in caught.value.stderr_tail


def test_run_many_redacts_secrets_and_refuses_sudo_with_a_password(fake_cluster):
    resource = ssh_resource_for(fake_cluster)
    leaky = RemoteCommand(["sh", "-c", 'echo "token=$1"; echo "err $1" >&2; exit 1', "x", SECRET])
    with resource.open(targets_for(fake_cluster), secrets=[SECRET]) as sessions:
        (result,) = sessions.run_many("pi-server", [leaky])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "token=***\n", "err ***\n")
    assert SECRET not in result.command
    no_sudo = targets_for(fake_cluster, user=NO_SUDO_USER)
    commands = [RemoteCommand(["true"]), RemoteCommand(["true"], sudo=True)]
    with resource.open(no_sudo) as sessions, pytest.raises(SudoRequiresPassword) as caught:
        sessions.run_many("pi-agent-2", commands)
    assert str(caught.value).startswith("pi-agent-2: `sudo -n` needs a password")


class OneChannelPerRead:
    """The SSH sessions with `run_many` undone: every read on a channel of its own, as before."""

    def __init__(self, sessions):
        self.sessions = sessions
        self.log = None

    def run(self, *args, **kwargs):
        return self.sessions.run(*args, **kwargs)

    def run_many(self, node, commands):
        return [
            self.sessions.run(node, c.argv, sudo=c.sudo, timeout_s=c.timeout_s, check=False)
            for c in commands
        ]


def test_a_batched_fact_read_parses_what_per_command_reads_parse(fake_cluster):
    """Every fact the bring-up reads, on a fresh node (files absent, K3s not installed) and on
    the server after the reads that fail: the same values and the same notes."""
    from platform_assets.inventory import load_inventory

    inv = load_inventory(fake_cluster.inventory_path)
    facts = (
        *preflight_facts(inv.k3s.data_dir),
        *node_prep_facts(inv),
        *k3s_facts("k3s.service", token="K10-some-token", data_dir=inv.k3s.data_dir),
    )
    resource = ssh_resource_for(fake_cluster)
    with resource.open(ssh_targets(inv, ["pi-server"])) as sessions:
        batched = read_facts(sessions, "pi-server", facts)
        alone = read_facts(OneChannelPerRead(sessions), "pi-server", facts)
    # Measurements differ from one read to the next (this machine's disk); the rest must not.
    measured = {"fsync", "disk"}
    assert {k: v for k, v in batched.values.items() if k not in measured} == {
        k: v for k, v in alone.values.items() if k not in measured
    }
    assert batched["fsync"].method == alone["fsync"].method and batched["fsync"].mean_ms
    assert batched["disk"].size_bytes == alone["disk"].size_bytes
    # A missing tool is reported by the shell that looked for it (sh here, the login shell
    # there): the same exit code and the same words, not the same shell name.
    assert batched.notes.keys() == alone.notes.keys()
    for name, note in batched.notes.items():
        assert note.split(":")[0] == alone.notes[name].split(":")[0], name
    assert batched.notes["k3s_version"].startswith("exit 127: sh: ")
    assert batched.notes["k3s_version"].endswith("k3s: not found")
    assert batched["k3s_token_file"] == "absent"  # the stdin read, on its own channel
    assert batched["model"] and batched["hostname"]
