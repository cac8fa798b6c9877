"""SSH to the nodes, verified: known_hosts only, key auth, `sudo -n`, a timeout on every call.

`SshResource.open(targets)` gives a `NodeSessions`: at most one paramiko connection per host,
opened on first use. Inside a Dagster run the connections belong to the run (opened lazily,
shared by every step that opens sessions, closed when the run ends: `yield_for_execution`);
outside a run they close with the `NodeSessions`. Commands given as a list are quoted argument
by argument (`shlex.join`); output is streamed to the run's log line by line, and kept in the
`CommandResult`, with every secret replaced by `***`. `run_many` runs several read-only commands
in one remote shell (one SSH channel instead of one per command) and still returns one result
per command. Every failure is a `NodeError` whose message names the host.

The resource knows nothing about K3s or Raspberry Pis: facts, plans and assets build on it, and
backups and patches will reuse it.
"""

import contextlib
import logging
import re
import secrets
import select
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
from pydantic import PrivateAttr

if TYPE_CHECKING:
    import paramiko

T = TypeVar("T")

SUDO_PREFIX = ("sudo", "-n", "--")
REDACTED = "***"
_STDERR_TAIL_LINES = 15
_SUDO_PASSWORD_MARKERS = ("a password is required", "a terminal is required")


# --- errors ---------------------------------------------------------------------------------


class NodeError(Exception):
    """Anything that went wrong on one node; the message always starts with the node's name."""

    def __init__(self, node: str, message: str):
        super().__init__(f"{node}: {message}")
        self.node = node
        self.reason = message


class NodeUnreachable(NodeError):
    """No SSH connection could be made (refused, timed out, no route) or it was lost."""


class NodeAuthFailed(NodeError):
    """The node refused our key for the inventory's SSH user."""


class HostKeyRejected(NodeError):
    """The node's host key is not in known_hosts, or differs from the one recorded there."""


class SudoRequiresPassword(NodeError):
    """`sudo -n` refused: the SSH user has no passwordless sudo on the node."""


class CommandFailed(NodeError):
    """A command exited non-zero; carries the exit code and the tail of its stderr."""

    def __init__(self, node: str, command: str, exit_code: int, stderr_tail: str):
        tail = stderr_tail.strip() or "(no stderr)"
        super().__init__(node, f"`{command}` exited with code {exit_code}; stderr:\n{tail}")
        self.command = command
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class CommandTimedOut(NodeError):
    """A command did not finish within its timeout; the channel was closed."""


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshTarget:
    """Where one node answers SSH: the inventory's name, address, port and user."""

    name: str
    address: str
    port: int
    user: str

    @property
    def known_hosts_name(self) -> str:
        # OpenSSH writes non-default ports as [host]:port in known_hosts.
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    """What one command did. `command` is the text that ran with secrets redacted."""

    node: str
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class RemoteCommand:
    """One command of `NodeSessions.run_many`: an argv (quoted like `run` quotes it), whether it
    runs under `sudo -n`, and its own timeout (None: the resource's `command_timeout_s`)."""

    argv: Sequence[str]
    sudo: bool = False
    timeout_s: float | None = None


# --- helpers --------------------------------------------------------------------------------


class _Redactor:
    def __init__(self, secrets: Sequence[str]):
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def command_text(command: Sequence[str] | str, *, sudo: bool = False) -> str:
    """The shell text sent to the node: lists are quoted argument by argument.

    A string is a shell snippet the caller wrote on purpose (pipes, redirections); with `sudo`
    it runs under `sh -c` so the whole snippet, not just its first word, gets root.
    """
    if isinstance(command, str):
        return shlex.join([*SUDO_PREFIX, "sh", "-c", command]) if sudo else command
    argv = [str(arg) for arg in command]
    if not argv:
        raise ValueError("empty command")
    return shlex.join([*SUDO_PREFIX, *argv] if sudo else argv)


# One remote shell runs the commands of a `run_many` in turn. Each runs as a job the shell waits
# for, so the TERM that a timeout sends (to the shell: it is the channel's process) reaches the
# command itself, as it does when a command has its own channel. After each command the shell
# prints a line with an unguessable marker, the command's index and its exit status on stdout,
# and the marker with the index on stderr; the newline in front of the marker keeps each
# command's output byte for byte, ending in a newline or not.
_BATCH_TRAP = """trap 'kill -TERM "$p" 2>/dev/null; exit 143' TERM HUP INT"""
_BATCH_STEP = (
    '{command} </dev/null & p=$!; wait "$p"; s=$?; '
    "printf '\\n%s %d %d\\n' {marker} {index} \"$s\"; printf '\\n%s %d\\n' {marker} {index} >&2"
)


def _batch_script(marker: str, texts: Sequence[str]) -> str:
    steps = (_BATCH_STEP.format(command=t, marker=marker, index=i) for i, t in enumerate(texts))
    return "\n".join([_BATCH_TRAP, *steps, "exit 0"]) + "\n"


def _batch_sections(
    text: str, marker: str, with_status: bool
) -> tuple[list[tuple[str, int | None]], str]:
    """Splits a run_many's stdout (with exit statuses) or stderr back into each command's part,
    in order, and what came after the last marker; a command the shell never finished has no
    part."""
    tail = r" (\d+) (-?\d+)\n" if with_status else r" (\d+)\n"
    pattern = re.compile("\n" + re.escape(marker) + tail)
    parts: list[tuple[str, int | None]] = []
    start = 0
    for match in pattern.finditer(text):
        if int(match.group(1)) != len(parts):
            break  # out of order: a command printed the marker itself; stop trusting the rest
        parts.append((text[start : match.start()], int(match.group(2)) if with_status else None))
        start = match.end()
    return parts, text[start:]


class _Deadlines:
    """When the running command must have finished. For a `run_many` each command has its own
    timeout, counted from when the one before it finished (its marker arrived on stdout)."""

    def __init__(self, timeouts: Sequence[float], marker: str | None = None):
        self.timeouts = list(timeouts)
        self.index = 0  # the command running now
        self.at = time.monotonic() + self.timeouts[0]
        self._marker = marker.encode() if marker else b""
        self._tail = b""

    def feed(self, stdout: bytes) -> None:
        if not self._marker:
            return
        seen = self._tail + stdout
        self._tail = seen[-(len(self._marker) - 1) :]
        finished = seen.count(self._marker)
        if finished:
            self.index += finished
            if self.index < len(self.timeouts):
                self.at = time.monotonic() + self.timeouts[self.index]

    @property
    def running(self) -> int:
        return min(self.index, len(self.timeouts) - 1)


def _fingerprint(key: "paramiko.PKey") -> str:
    return key.fingerprint  # "SHA256:..." like ssh-keygen -l prints


def _trust_hint(target: SshTarget, known_hosts: str) -> str:
    port_flag = f"-p {target.port} " if target.port != 22 else ""
    return (
        f"check the fingerprint on the node's console (`ssh-keygen -lf "
        f"/etc/ssh/ssh_host_ed25519_key.pub`), then trust it with: "
        f"ssh-keyscan {port_flag}-t ed25519 {target.address} >> {known_hosts}"
    )


def _stderr_tail(stderr: str) -> str:
    return "\n".join(stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])


class _LineLog:
    """Turns chunks of output into whole lines for the log, redacted."""

    def __init__(self, log: Any, prefix: str, redact: _Redactor, level: int):
        self.log = log
        self.prefix = prefix
        self.redact = redact
        self.level = level
        self.pending = ""

    def feed(self, chunk: str) -> None:
        if self.log is None:
            return
        self.pending += chunk
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._emit(line)

    def close(self) -> None:
        if self.log is not None and self.pending:
            self._emit(self.pending)
        self.pending = ""

    def _emit(self, line: str) -> None:
        text = f"{self.prefix}{self.redact(line.rstrip(chr(13)))}"
        if self.level >= logging.WARNING:
            self.log.warning(text)
        else:
            self.log.info(text)


# --- sessions -------------------------------------------------------------------------------


def _signal(channel: Any, name: str) -> None:
    """Asks sshd to send signal `name` to a command: closing the channel alone leaves it running
    on the node. RFC 4254 6.9 `signal` request, honoured by OpenSSH >= 7.9 for command sessions;
    paramiko has no call for it, so the message is built here. Failing to send it is harmless."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    with contextlib.suppress(Exception):
        m = Message()
        m.add_byte(cMSG_CHANNEL_REQUEST)
        m.add_int(channel.remote_chanid)
        m.add_string("signal")
        m.add_boolean(False)
        m.add_string(name)
        channel.transport._send_user_message(m)


class _RejectUnknownHostKey:
    """paramiko's RejectPolicy, remembering the offered key so the error can show it."""

    def __init__(self) -> None:
        import paramiko

        self._policy = paramiko.RejectPolicy()
        self.offered: paramiko.PKey | None = None

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self.offered = key
        self._policy.missing_host_key(client, hostname, key)


class _Connections:
    """At most one paramiko connection per host, opened on first use, reopened when lost."""

    def __init__(self, resource: "SshResource"):
        self._resource = resource
        self._clients: dict[SshTarget, paramiko.SSHClient] = {}
        self._locks: dict[SshTarget, threading.Lock] = {}
        self._guard = threading.Lock()
        self._closed = False
        # How many connections were made per host; a reboot legitimately adds one.
        self.opened: dict[SshTarget, int] = {}

    def close(self) -> None:
        self._closed = True
        for target in list(self._clients):
            self.drop(target)

    def drop(self, target: SshTarget) -> None:
        client = self._clients.pop(target, None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def client(self, target: SshTarget) -> "paramiko.SSHClient":
        with self._guard:
            lock = self._locks.setdefault(target, threading.Lock())
        with lock:
            client = self._clients.get(target)
            if client is not None:
                transport = client.get_transport()
                if transport is not None and transport.is_active():
                    return client
                self.drop(target)  # lost (e.g. the node rebooted): a new connection
            if self._closed:
                raise NodeError(target.name, "SSH sessions are closed")
            client = self._connect(target)
            self._clients[target] = client
            self.opened[target] = self.opened.get(target, 0) + 1
            return client

    def _connect(self, target: SshTarget) -> "paramiko.SSHClient":
        import paramiko

        res = self._resource
        known_hosts = str(Path(res.known_hosts_path).expanduser())
        key_path = Path(res.private_key_path).expanduser()
        if not key_path.is_file():
            raise NodeAuthFailed(
                target.name,
                f"private key {key_path} does not exist (inventory ssh.private_key_path); "
                "create one with `ssh-keygen -t ed25519` and authorize it on the node",
            )
        client = paramiko.SSHClient()
        # known_hosts only: never the user's ~/.ssh, never AutoAdd or Warning.
        try:
            client.load_host_keys(known_hosts)
        except FileNotFoundError:
            raise HostKeyRejected(
                target.name,
                f"known_hosts file {known_hosts} does not exist, so no host key can be "
                f"verified; {_trust_hint(target, known_hosts)}",
            ) from None
        policy = _RejectUnknownHostKey()
        client.set_missing_host_key_policy(policy)
        where = f"{target.user}@{target.address}:{target.port}"
        timeout = res.connect_timeout_s
        try:
            client.connect(
                target.address,
                port=target.port,
                username=target.user,
                key_filename=str(key_path),
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyRejected(
                target.name,
                f"host key for {target.known_hosts_name} CHANGED: the node offered "
                f"{exc.key.get_name()} {_fingerprint(exc.key)} but {known_hosts} records "
                f"{exc.expected_key.get_name()} {_fingerprint(exc.expected_key)}. Refusing to "
                "connect. If the node was reinstalled, check the new fingerprint on its "
                f"console, remove the old line with `ssh-keygen -R '{target.known_hosts_name}' "
                f"-f {known_hosts}` and trust the new key; otherwise someone may be "
                "intercepting the connection.",
            ) from None
        except paramiko.PasswordRequiredException:
            client.close()
            raise NodeAuthFailed(
                target.name,
                f"private key {key_path} is encrypted; the platform needs a key without a "
                "passphrase (a deploy key kept only where the platform runs)",
            ) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise NodeAuthFailed(
                target.name,
                f"authentication failed for {where} with key {res.private_key_path} "
                f"({exc.__class__.__name__}); is its public key in "
                f"~{target.user}/.ssh/authorized_keys on the node?",
            ) from None
        except paramiko.SSHException as exc:
            client.close()
            if policy.offered is not None:
                key = policy.offered
                raise HostKeyRejected(
                    target.name,
                    f"host key for {target.known_hosts_name} is unknown (the node offered "
                    f"{key.get_name()} {_fingerprint(key)}, not in {known_hosts}); refusing "
                    f"to connect. To trust it, {_trust_hint(target, known_hosts)}",
                ) from None
            raise NodeUnreachable(
                target.name, f"SSH handshake with {where} failed: {exc}"
            ) from None
        except TimeoutError:
            client.close()
            raise NodeUnreachable(
                target.name, f"no answer from {where} within {timeout:g}s"
            ) from None
        except (OSError, EOFError) as exc:  # refused, no route, reset during the handshake
            client.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise NodeUnreachable(target.name, f"cannot connect to {where}: {reason}") from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return client


class NodeSessions:
    """SSH sessions to some nodes, with the log and the secrets of the step that uses them.

    On the run's connections when given (they outlive these sessions), else on connections of
    its own, closed on exit.
    """

    def __init__(
        self,
        resource: "SshResource",
        targets: Sequence[SshTarget],
        log: Any = None,
        secrets: Sequence[str] = (),
        connections: _Connections | None = None,
    ):
        self._resource = resource
        self.targets = {t.name: t for t in targets}
        if len(self.targets) != len(targets):
            raise ValueError("two SSH targets share a node name")
        self.log = log
        self.redact = _Redactor(secrets)
        self._owns_connections = connections is None
        self._connections = connections or _Connections(resource)

    # context manager
    def __enter__(self) -> "NodeSessions":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_connections:
            self._connections.close()

    @property
    def connections_opened(self) -> dict[str, int]:
        """How many connections were made per node (by these sessions or the run before)."""
        return {name: self._connections.opened.get(t, 0) for name, t in self.targets.items()}

    # connections
    def _target(self, node: str) -> SshTarget:
        try:
            return self.targets[node]
        except KeyError:
            raise NodeError(node, "not among this step's SSH targets") from None

    def _drop(self, node: str) -> None:
        self._connections.drop(self._target(node))

    def _client(self, node: str) -> "paramiko.SSHClient":
        return self._connections.client(self._target(node))

    # commands
    def run(
        self,
        node_name: str,
        command: Sequence[str] | str,
        *,
        sudo: bool = False,
        timeout_s: float | None = None,
        check: bool = True,
        stdin: bytes | None = None,
        quiet: bool = False,
    ) -> CommandResult:
        """Runs one command on one node and returns what it did.

        `quiet`: neither the command line nor its output goes to the log (reads whose output
        the caller reports itself; each log line is an event the run stores).

        Raises `CommandFailed` for a non-zero exit when `check`, `SudoRequiresPassword` when
        `sudo -n` is refused (whatever `check` says), `CommandTimedOut` after `timeout_s`
        (default: the resource's `command_timeout_s`), `NodeUnreachable` if the connection
        cannot be made or is lost.
        """
        text = command_text(command, sudo=sudo)
        shown = self.redact(text)
        timeout = self._resource.command_timeout_s if timeout_s is None else timeout_s
        log = None if quiet else self.log
        if log is not None:
            log.info(f"[{node_name}] $ {shown}")
        exit_code, out, err = self._exec_or_raise(
            node_name, text, _Deadlines([timeout]), [shown], stdin, log
        )
        result = self._result(node_name, shown, sudo, exit_code, out, err)
        if check and exit_code != 0:
            raise CommandFailed(node_name, shown, exit_code, _stderr_tail(result.stderr))
        return result

    def run_many(self, node_name: str, commands: Sequence[RemoteCommand]) -> list[CommandResult]:
        """Runs read-only commands one after another in one remote shell on one node (one SSH
        channel, where `run` opens one per command) and returns one result per command, in
        order, as `run(..., check=False, quiet=True)` would: each command's own exit code,
        stdout and stderr (redacted), its stdin /dev/null.

        Each command has its own timeout (`CommandTimedOut` names it; it is stopped on the
        node and the commands after it do not run); `SudoRequiresPassword` and
        `NodeUnreachable` as for `run`, naming the command that was running.
        """
        if not commands:
            return []
        texts = [command_text(c.argv, sudo=c.sudo) for c in commands]
        shown = [self.redact(t) for t in texts]
        default = self._resource.command_timeout_s
        timeouts = [default if c.timeout_s is None else c.timeout_s for c in commands]
        # Unguessable, so no command's output can end another's section by accident.
        marker = f"picluster-{secrets.token_hex(16)}"
        script = command_text(["sh", "-c", _batch_script(marker, texts), "sh"])
        exit_code, out, err = self._exec_or_raise(
            node_name, script, _Deadlines(timeouts, marker), shown, None, None
        )
        outs, _ = _batch_sections(out, marker, with_status=True)
        errs, unfinished_stderr = _batch_sections(err, marker, with_status=False)
        if len(outs) < len(commands):
            # The shell ended (or was killed) before this command reported its status.
            i = len(outs)
            raise CommandFailed(
                node_name, shown[i], exit_code, _stderr_tail(self.redact(unfinished_stderr))
            )
        errs += [(unfinished_stderr, None)] * (len(commands) - len(errs))
        return [
            self._result(node_name, shown[i], c.sudo, int(outs[i][1] or 0), outs[i][0], errs[i][0])
            for i, c in enumerate(commands)
        ]

    def _exec_or_raise(
        self,
        node: str,
        text: str,
        deadlines: _Deadlines,
        shown: Sequence[str],
        stdin: bytes | None,
        log: Any,
    ) -> tuple[int, str, str]:
        """`_exec` on the node's connection, its failures named by the command that was running
        (`shown[deadlines.running]`)."""
        from paramiko import SSHException

        client = self._client(node)
        try:
            return self._exec(client, node, text, deadlines, stdin, log)
        except CommandTimedOut as exc:
            i = deadlines.running
            raise CommandTimedOut(
                node, f"`{shown[i]}` did not finish within {deadlines.timeouts[i]:g}s"
            ) from exc.__cause__
        except (EOFError, OSError, SSHException) as exc:
            self._drop(node)
            reason = self.redact(str(exc)) or type(exc).__name__
            raise NodeUnreachable(
                node, f"connection lost while running `{shown[deadlines.running]}`: {reason}"
            ) from None

    def _result(
        self, node: str, shown: str, sudo: bool, exit_code: int, out: str, err: str
    ) -> CommandResult:
        # Redacted like the log: a result's output may reach metadata or an exception.
        out, err = self.redact(out), self.redact(err)
        if sudo and exit_code == 1 and any(m in err for m in _SUDO_PASSWORD_MARKERS):
            user = self._target(node).user
            raise SudoRequiresPassword(
                node,
                f"`sudo -n` needs a password for {user}; give {user} passwordless sudo on "
                f"the node (e.g. `{user} ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/) or use "
                "a user that has it",
            )
        return CommandResult(node, shown, exit_code, out, err)

    def _exec(
        self,
        client: "paramiko.SSHClient",
        node: str,
        text: str,
        deadlines: _Deadlines,
        stdin: bytes | None,
        log: Any,
    ) -> tuple[int, str, str]:
        import paramiko

        transport = client.get_transport()
        if transport is None or not transport.is_active():
            raise EOFError("transport closed")
        try:
            channel = transport.open_session(timeout=self._resource.connect_timeout_s)
        except paramiko.SSHException as exc:
            raise OSError(str(exc)) from None
        out_chunks: list[bytes] = []
        err_chunks: list[bytes] = []
        out_log = _LineLog(log, f"[{node}] ", self.redact, logging.INFO)
        err_log = _LineLog(log, f"[{node}] stderr: ", self.redact, logging.INFO)
        try:
            channel.exec_command(text)
            if stdin is not None:
                # A command that does not read its stdin must not hold the step past its
                # timeout: sendall blocks once the channel's window is full.
                channel.settimeout(max(deadlines.at - time.monotonic(), 0.001))
                try:
                    channel.sendall(stdin)
                except TimeoutError:
                    _signal(channel, "TERM")
                    raise CommandTimedOut(node, "timeout writing stdin") from None
                channel.settimeout(None)
            channel.shutdown_write()
            while True:
                drained = False
                while channel.recv_ready():
                    data = channel.recv(65536)
                    out_chunks.append(data)
                    deadlines.feed(data)
                    out_log.feed(data.decode(errors="replace"))
                    drained = True
                while channel.recv_stderr_ready():
                    data = channel.recv_stderr(65536)
                    err_chunks.append(data)
                    err_log.feed(data.decode(errors="replace"))
                    drained = True
                if (
                    channel.exit_status_ready()
                    and not channel.recv_ready()
                    and not channel.recv_stderr_ready()
                    and (channel.eof_received or channel.closed)
                ):
                    break
                if channel.closed and not channel.exit_status_ready():
                    raise EOFError("channel closed before the command exited")
                remaining = deadlines.at - time.monotonic()
                if remaining <= 0:
                    _signal(channel, "TERM")  # sudo passes TERM on to the command
                    raise CommandTimedOut(node, "timeout")
                if not drained:
                    select.select([channel], [], [], min(remaining, 0.5))
            exit_code = channel.recv_exit_status()
            if exit_code == -1 and not transport.is_active():
                raise EOFError("connection dropped")
        finally:
            out_log.close()
            err_log.close()
            channel.close()
        return (
            exit_code,
            b"".join(out_chunks).decode(errors="replace"),
            b"".join(err_chunks).decode(errors="replace"),
        )

    def for_each(
        self, node_names: Sequence[str], fn: Callable[[str], T]
    ) -> dict[str, "T | NodeError"]:
        """Calls `fn(node_name)` for every node, at most `max_parallel` at a time.

        One node's failure never stops the others: its entry is the `NodeError` it raised (any
        other exception is wrapped in a `NodeError` naming the node). Keys keep the given order.
        """
        names = list(dict.fromkeys(node_names))
        for name in names:
            self._target(name)

        def call(name: str) -> "T | NodeError":
            try:
                return fn(name)
            except NodeError as exc:
                return exc
            except Exception as exc:  # a bug or parse error on one node must not stop others
                error = NodeError(name, f"{type(exc).__name__}: {self.redact(str(exc))}")
                error.__cause__ = exc
                return error

        workers = max(1, min(self._resource.max_parallel, len(names) or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssh") as pool:
            results = list(pool.map(call, names))
        return dict(zip(names, results, strict=True))

    def wait_reachable(self, node_name: str, timeout_s: float, interval_s: float = 2.0) -> float:
        """Waits (bounded) until the node answers a trivial command; returns seconds waited.

        For after a reboot. Host key and auth errors are raised at once, never waited out.
        """
        started = time.monotonic()
        last: NodeError | None = None
        while time.monotonic() - started < timeout_s:
            try:
                self.run(node_name, ["true"], timeout_s=self._resource.connect_timeout_s)
                return time.monotonic() - started
            except (NodeUnreachable, CommandTimedOut) as exc:
                last = exc
                self._drop(node_name)
                time.sleep(interval_s)
        raise NodeUnreachable(
            node_name,
            f"did not answer within {timeout_s:g}s"
            + (f" (last error: {last.reason})" if last else ""),
        )


class SshResource(dg.ConfigurableResource):
    """SSH to the cluster's nodes with verified host keys and key authentication."""

    known_hosts_path: str
    private_key_path: str
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 300.0
    max_parallel: int = 4

    # The run's connections, one per host, shared by every step of the run (Dagster initializes
    # a resource once per run in the in-process executor).
    _run_connections: _Connections | None = PrivateAttr(default=None)

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["SshResource"]:
        self._run_connections = _Connections(self)
        try:
            yield self
        finally:
            self._run_connections.close()
            self._run_connections = None

    def open(
        self,
        targets: Sequence[SshTarget],
        log: Any = None,
        secrets: Sequence[str] = (),
    ) -> NodeSessions:
        """Sessions for one step; use as a context manager. Inside a run they use the run's
        connections (closed when the run ends); outside one, connections close with them."""
        return NodeSessions(
            self, targets, log=log, secrets=secrets, connections=self._run_connections
        )
