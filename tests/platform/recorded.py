"""A recorded stand-in for `NodeSessions` (the SSH layer) in unit tests.

Fabric's shape: each remote command is (command, stdout, stderr, exit code). `RecordedSessions`
answers `run` (and `run_many`, command by command) from such records per node, keeps every
command it was asked in `calls`, and offers the same `for_each`. It is a fake of our SSH layer,
not of a Pi: the over-real-SSH tests against the fake-Pi cluster live in tests/ssh/.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from resources.ssh import (
    CommandFailed,
    CommandResult,
    CommandTimedOut,
    NodeError,
    NodeUnreachable,
    command_text,
)


@dataclass(frozen=True)
class Recorded:
    command: str
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


@dataclass
class RecordedSessions:
    """`records[node][command text]` -> Recorded; unknown commands exit 127 like a shell."""

    records: Mapping[str, Mapping[str, Recorded]]
    unreachable: set[str] = field(default_factory=set)
    # Commands (text without `sudo -n --`) that run past their timeout.
    hang: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, bytes | None]] = field(default_factory=list)
    # The timeout each command was given (None: the resource's default).
    timeouts: dict[str, float | None] = field(default_factory=dict)
    # Called after each recorded command (e.g. to change state after a write).
    on_run: Callable[[str, str, bytes | None], None] | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    log = None

    def run(
        self,
        node_name,
        command,
        *,
        sudo=False,
        timeout_s=None,
        check=True,
        stdin=None,
        quiet=False,
    ):
        text = command_text(command, sudo=sudo)
        if node_name in self.unreachable:
            raise NodeUnreachable(node_name, "cannot connect (recorded as down)")
        self.calls.append((node_name, text, stdin))
        key = text.removeprefix("sudo -n -- ")
        self.timeouts[key] = timeout_s
        if key in self.hang:
            raise CommandTimedOut(node_name, f"`{text}` did not finish within {timeout_s:g}s")
        rec = self.records.get(node_name, {}).get(key)
        if rec is None:
            rec = Recorded(key, "", f"sh: 1: {key.split()[0]}: not found", 127)
        if self.on_run is not None:
            self.on_run(node_name, key, stdin)
        if check and rec.exit_code != 0:
            raise CommandFailed(node_name, text, rec.exit_code, rec.stderr)
        return CommandResult(node_name, text, rec.exit_code, rec.stdout, rec.stderr)

    def run_many(self, node_name, commands):
        return [
            self.run(node_name, c.argv, sudo=c.sudo, timeout_s=c.timeout_s, check=False, quiet=True)
            for c in commands
        ]

    def for_each(self, node_names: Sequence[str], fn):
        out = {}
        for name in node_names:
            try:
                out[name] = fn(name)
            except NodeError as exc:
                out[name] = exc
        return out


def records(*items: Recorded) -> dict[str, Recorded]:
    return {r.command: r for r in items}
