"""The SSH resource against real OpenSSH servers: the FAKE Pi cluster's sshd on 127.0.0.11-14.

Everything here goes over real SSH (paramiko client, OpenSSH server); only the Pi is fake.
"""

import os
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.core.facts import Fact, parse_text, read_facts
from resources.ssh import (
    CommandFailed,
    CommandTimedOut,
    HostKeyRejected,
    NodeAuthFailed,
    NodeError,
    NodeUnreachable,
    SshResource,
    SshTarget,
    SudoRequiresPassword,
)
from tests.fake_pi.cluster import NO_SUDO_USER, FakeCluster
from tests.fake_pi.fixtures import ssh_resource_for, targets_for

pytestmark = pytest.mark.service

SECRET = "K10-s3cr3t-join-token"


class RecordingLog:
    def __init__(self):
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    warning = info


def test_round_trip_quotes_every_argument(ssh_resource, ssh_targets):
    with ssh_resource.open(ssh_targets) as sessions:
        result = sessions.run("pi-server", ["printf", "%s|", "a b", "$(id)", ";", "'q'"])
    assert result.exit_code == 0
    assert result.stdout == "a b|$(id)|;|'q'|"
    assert result.node == "pi-server"


def test_stdin_reaches_the_command(ssh_resource, ssh_targets):
    with ssh_resource.open(ssh_targets) as sessions:
        result = sessions.run("pi-agent-1", ["cat"], stdin=b"line one\nline two\n")
    assert result.stdout == "line one\nline two\n"


def test_one_connection_per_host_for_many_commands(ssh_resource, ssh_targets):
    with ssh_resource.open(ssh_targets) as sessions:
        seen = {sessions.run("pi-agent-2", "echo $SSH_CONNECTION").stdout for _ in range(4)}
        assert len(seen) == 1  # same client address and port: one TCP connection
        assert sessions.connections_opened["pi-agent-2"] == 1
        assert sessions.connections_opened["pi-server"] == 0  # opened lazily


def test_unknown_host_key_is_refused_with_how_to_trust(fake_cluster, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    resource = ssh_resource_for(fake_cluster, known_hosts_path=str(empty))
    with (
        resource.open(targets_for(fake_cluster)) as sessions,
        pytest.raises(HostKeyRejected) as caught,
    ):
        sessions.run("pi-server", ["true"])
    message = str(caught.value)
    assert message.startswith("pi-server: ")
    assert "unknown" in message
    assert f"ssh-keyscan -p {fake_cluster.port} -t ed25519 127.0.0.11 >> {empty}" in message
    assert "SHA256:" in message
    # Following the message (after checking the fingerprint) is enough to connect.
    keyscan = message.split("trust it with: ", 1)[1].split(" >> ")[0]
    scanned = subprocess.run(keyscan.split(), capture_output=True, text=True, check=True)
    assert caught.value.reason.split("offered ssh-ed25519 ")[1].split(",")[0].split()[0] in (
        subprocess.run(
            ["ssh-keygen", "-lf", "-"],
            input=scanned.stdout,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    empty.write_text(scanned.stdout)
    with resource.open(targets_for(fake_cluster)) as sessions:
        assert sessions.run("pi-server", ["true"]).exit_code == 0


def test_changed_host_key_is_refused(fake_cluster, tmp_path):
    # known_hosts records another node's key for pi-server: what a MITM or reinstall looks like.
    other_key = fake_cluster.host_public_key("pi-agent-3").split()[:2]
    lines = [
        line
        if not line.startswith(f"[127.0.0.11]:{fake_cluster.port} ")
        else f"[127.0.0.11]:{fake_cluster.port} {other_key[0]} {other_key[1]}\n"
        for line in fake_cluster.known_hosts.read_text().splitlines(keepends=True)
    ]
    changed = tmp_path / "known_hosts"
    changed.write_text("".join(lines))
    resource = ssh_resource_for(fake_cluster, known_hosts_path=str(changed))
    with resource.open(targets_for(fake_cluster)) as sessions:
        with pytest.raises(HostKeyRejected) as caught:
            sessions.run("pi-server", ["true"])
        assert "CHANGED" in str(caught.value) and "Refusing" in str(caught.value)
        assert str(caught.value).startswith("pi-server: ")
        # The other nodes are unaffected.
        assert sessions.run("pi-agent-1", ["true"]).exit_code == 0


def test_wrong_key_fails_authentication_naming_the_host(fake_cluster, tmp_path):
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    resource = ssh_resource_for(fake_cluster, private_key_path=str(key))
    with (
        resource.open(targets_for(fake_cluster)) as sessions,
        pytest.raises(NodeAuthFailed) as caught,
    ):
        sessions.run("pi-agent-1", ["true"])
    assert str(caught.value).startswith("pi-agent-1: ")
    assert "piadmin@127.0.0.12" in str(caught.value)


def test_sudo_runs_as_root_with_passwordless_sudo(ssh_resource, ssh_targets):
    with ssh_resource.open(ssh_targets) as sessions:
        assert sessions.run("pi-server", ["id", "-u"], sudo=True).stdout.strip() == "0"
        # A string command runs whole under sudo (sh -c), not just its first word.
        out = sessions.run("pi-server", "id -u; id -u", sudo=True).stdout.split()
        assert out == ["0", "0"]


def test_sudo_without_passwordless_sudo_is_a_clear_error(fake_cluster):
    resource = ssh_resource_for(fake_cluster)
    with resource.open(targets_for(fake_cluster, user=NO_SUDO_USER)) as sessions:
        assert sessions.run("pi-agent-2", ["id", "-un"]).stdout.strip() == NO_SUDO_USER
        with pytest.raises(SudoRequiresPassword) as caught:
            sessions.run("pi-agent-2", ["true"], sudo=True, check=False)
    message = str(caught.value)
    assert message.startswith("pi-agent-2: ")
    assert NO_SUDO_USER in message and "NOPASSWD" in message


def test_failed_command_names_host_exit_code_and_stderr_tail(ssh_resource, ssh_targets):
    with ssh_resource.open(ssh_targets) as sessions:
        with pytest.raises(CommandFailed) as caught:
            sessions.run("pi-agent-3", ["sh", "-c", "echo first >&2; echo disk full >&2; exit 3"])
        assert caught.value.exit_code == 3
        assert "pi-agent-3: " in str(caught.value) and "disk full" in str(caught.value)
        unchecked = sessions.run("pi-agent-3", ["sh", "-c", "exit 4"], check=False)
        assert unchecked.exit_code == 4


def _running(argv: list[str]) -> bool:
    # The fake nodes share this machine's processes (their /proc lists none), so look here.
    wanted = "\0".join(argv).encode() + b"\0"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == wanted:
                return True
        except OSError:
            continue
    return False


@pytest.mark.parametrize("sudo", [False, True])
def test_timeout_names_the_host_and_leaves_the_connection_usable(ssh_resource, ssh_targets, sudo):
    slow = ["sleep", f"29.{os.getpid()}{int(sudo)}"]  # unique to this session
    with ssh_resource.open(ssh_targets) as sessions:
        with pytest.raises(CommandTimedOut) as caught:
            sessions.run("pi-server", slow, timeout_s=0.5, sudo=sudo)
        assert str(caught.value).startswith("pi-server: ")
        assert f"sleep {slow[1]}" in str(caught.value)
        assert sessions.run("pi-server", ["echo", "still here"]).stdout == "still here\n"
        assert sessions.connections_opened["pi-server"] == 1
        # The command was stopped on the node (closing the channel alone leaves it running).
        for _ in range(100):
            if not _running(slow):
                break
            time.sleep(0.05)
        assert not _running(slow)


def test_unreachable_node_is_named(fake_cluster):
    resource = ssh_resource_for(fake_cluster, connect_timeout_s=2.0)
    nobody = SshTarget("pi-ghost", "127.0.0.19", fake_cluster.port, "piadmin")
    with resource.open([nobody]) as sessions, pytest.raises(NodeUnreachable) as caught:
        sessions.run("pi-ghost", ["true"])
    assert str(caught.value).startswith("pi-ghost: ")
    assert f"127.0.0.19:{fake_cluster.port}" in str(caught.value)


def test_secrets_are_redacted_in_streamed_logs_and_errors(ssh_resource, ssh_targets):
    log = RecordingLog()
    with ssh_resource.open(ssh_targets, log=log, secrets=[SECRET]) as sessions:
        result = sessions.run(
            "pi-server", ["sh", "-c", 'echo "token=$1"; echo "err $1" >&2', "x", SECRET]
        )
        # The result is redacted like the log: it may reach metadata or an exception.
        assert (result.stdout, result.stderr) == ("token=***\n", "err ***\n")
        with pytest.raises(CommandFailed) as caught:
            sessions.run("pi-server", ["sh", "-c", 'echo "bad $1" >&2; exit 1', "x", SECRET])
    text = "\n".join(log.lines)
    assert SECRET not in text and SECRET not in str(caught.value)
    assert "[pi-server] token=***" in log.lines
    assert "[pi-server] stderr: err ***" in log.lines
    assert "bad ***" in str(caught.value)
    assert SECRET not in result.command


def test_for_each_is_bounded_and_one_failure_does_not_stop_the_others(fake_cluster):
    resource = ssh_resource_for(fake_cluster, max_parallel=2)
    targets = targets_for(fake_cluster)
    active, peak, lock = [0], [0], threading.Lock()

    def probe(node: str) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            if node == "pi-agent-2":
                return sessions.run(node, ["sh", "-c", "exit 7"]).stdout
            return sessions.run(node, ["hostname"]).stdout.strip()
        finally:
            with lock:
                active[0] -= 1

    with resource.open(targets) as sessions:
        results = sessions.for_each([t.name for t in targets], probe)
    assert list(results) == ["pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3"]
    assert isinstance(results["pi-agent-2"], CommandFailed)
    assert str(results["pi-agent-2"]).startswith("pi-agent-2: ")
    assert all(isinstance(results[n], str) for n in ("pi-server", "pi-agent-1", "pi-agent-3"))
    assert peak[0] <= 2


def test_for_each_with_a_node_down_names_it(fresh_cluster: FakeCluster):
    fresh_cluster.stop_node("pi-agent-1")
    try:
        resource = ssh_resource_for(fresh_cluster, connect_timeout_s=2.0)
        targets = targets_for(fresh_cluster)
        with resource.open(targets) as sessions:
            results = sessions.for_each(
                [t.name for t in targets], lambda n: sessions.run(n, ["true"]).exit_code
            )
        assert isinstance(results["pi-agent-1"], NodeUnreachable)
        assert str(results["pi-agent-1"]).startswith("pi-agent-1: ")
        assert [results[n] for n in ("pi-server", "pi-agent-2", "pi-agent-3")] == [0, 0, 0]
    finally:
        fresh_cluster.restart_all()


def test_wait_reachable_reconnects_after_a_reboot(ssh_resource, ssh_targets):
    boot_id = ["cat", "/proc/sys/kernel/random/boot_id"]
    with ssh_resource.open(ssh_targets) as sessions:
        before = sessions.run("pi-agent-3", boot_id).stdout
        sessions.run("pi-agent-3", ["reboot"], sudo=True)
        # `reboot` returns before the node goes down, as on a real Pi: wait for a new boot id.
        after = before
        for _ in range(100):
            sessions.wait_reachable("pi-agent-3", timeout_s=30, interval_s=0.2)
            try:
                after = sessions.run("pi-agent-3", boot_id).stdout
            except NodeUnreachable:
                continue
            if after != before:
                break
            time.sleep(0.1)
        assert after != before
        assert sessions.connections_opened["pi-agent-3"] == 2  # the reboot cut the first one


def test_missing_or_encrypted_private_key_is_named(fake_cluster, tmp_path):
    missing = ssh_resource_for(fake_cluster, private_key_path=str(tmp_path / "no_such_key"))
    with (
        missing.open(targets_for(fake_cluster)) as sessions,
        pytest.raises(NodeAuthFailed) as caught,
    ):
        sessions.run("pi-server", ["true"])
    assert str(caught.value).startswith("pi-server: private key ") and "does not exist" in str(
        caught.value
    )
    key = tmp_path / "locked_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True
    )
    locked = ssh_resource_for(fake_cluster, private_key_path=str(key))
    with (
        locked.open(targets_for(fake_cluster)) as sessions,
        pytest.raises(NodeAuthFailed) as caught,
    ):
        sessions.run("pi-server", ["true"])
    assert "is encrypted" in str(caught.value)


def test_a_fact_read_that_fails_keeps_no_secret_in_its_note(ssh_resource, ssh_targets):
    # A failed read's stderr tail is kept as a note that plans and preflight show as metadata.
    leaky = Fact("leaky", ("sh", "-c", "cat >&2; exit 3"), parse_text, stdin=SECRET.encode())
    with ssh_resource.open(ssh_targets, secrets=[SECRET]) as sessions:
        facts = read_facts(sessions, "pi-agent-1", (leaky,))
    assert facts.notes["leaky"] == "exit 3: ***"


def test_writing_stdin_has_a_deadline(ssh_resource, ssh_targets):
    # `sleep` never reads its stdin: once the channel's window is full, writing blocks until
    # the command exits, unless the write has a deadline.
    unread = b"x" * (16 * 1024 * 1024)
    started = time.monotonic()
    with ssh_resource.open(ssh_targets) as sessions:
        with pytest.raises(CommandTimedOut) as caught:
            sessions.run("pi-agent-2", ["sleep", "40"], stdin=unread, timeout_s=2)
        assert sessions.run("pi-agent-2", ["true"]).exit_code == 0
    assert time.monotonic() - started < 15
    assert str(caught.value).startswith("pi-agent-2: `sleep 40` did not finish within 2s")


def test_one_connection_per_host_for_every_step_of_a_run(fake_cluster):
    """Two steps of one run (two assets) share the run's connection to a node; it closes when
    the run ends."""
    resource = ssh_resource_for(fake_cluster)
    targets = [t for t in targets_for(fake_cluster) if t.name == "pi-agent-3"]
    seen: list[str] = []
    kept: list = []

    @dg.asset
    def first(ssh: SshResource) -> None:
        with ssh.open(targets) as sessions:
            seen.append(sessions.run("pi-agent-3", "echo $SSH_CONNECTION").stdout)
            kept.append(sessions)

    @dg.asset(deps=[first])
    def second(ssh: SshResource) -> None:
        with ssh.open(targets) as sessions:
            seen.append(sessions.run("pi-agent-3", "echo $SSH_CONNECTION").stdout)
            assert sessions.connections_opened["pi-agent-3"] == 1

    assert dg.materialize([first, second], resources={"ssh": resource}).success
    assert len(seen) == 2 and seen[0] == seen[1]  # same client port: one TCP connection
    with pytest.raises(NodeError, match="SSH sessions are closed"):
        kept[0].run("pi-agent-3", ["true"])  # closed with the run


def test_a_quiet_command_logs_nothing_and_still_returns_its_output(ssh_resource, ssh_targets):
    log = RecordingLog()
    with ssh_resource.open(ssh_targets, log=log) as sessions:
        result = sessions.run("pi-server", ["sh", "-c", "echo out; echo err >&2"], quiet=True)
        sessions.run("pi-server", ["echo", "loud"])
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert log.lines == ["[pi-server] $ echo loud", "[pi-server] loud"]
