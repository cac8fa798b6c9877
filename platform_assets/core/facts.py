"""Facts: what a node is like now, each read by one plain command and parsed by a pure function.

A fact never changes the node. The parsers take the command's stdout (text as the node printed
it) and return typed values; they are tested on real Raspberry Pi OS output recorded in
`/work/shared/data/pi-facts/` (see tests/platform/test_facts.py). A fact whose command fails
(a file that is not there, a tool that is not installed) has the value `None`: planning treats
that as "absent", never as an error of the read. Each step keeps its own facts next to its plan
(`<step>/facts.py`); this module has what they share.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from resources.ssh import RemoteCommand, command_text


@dataclass(frozen=True)
class Fact:
    """One read: a command (argv; quoted by the SSH layer) and a pure parser of its stdout."""

    name: str
    argv: tuple[str, ...]
    parse: Callable[[str], Any]
    sudo: bool = False
    # Not in the repr: it may hold a secret to compare on the node (see token_file_fact).
    stdin: bytes | None = field(default=None, repr=False)
    # Some commands print their answer even with a non-zero exit status (`systemctl is-enabled`
    # prints "disabled" and exits 1; dpkg-query exits 1 when some package is unknown).
    output_on_failure: bool = False
    # Seconds the read may take; None: the SSH resource's command_timeout_s.
    timeout_s: float | None = None

    @property
    def command(self) -> str:
        return command_text(self.argv)


def cat_fact(name: str, path: str, parse: Callable[[str], Any], sudo: bool = False) -> Fact:
    """A file's content, parsed; `None` when the file is not there."""
    return Fact(name, ("cat", path), parse, sudo)


def unit_state_fact(name: str, query: str, unit: str) -> Fact:
    """`systemctl is-enabled|is-active UNIT`: prints the state even when it exits non-zero."""
    return Fact(name, ("systemctl", query, unit), parse_first_line, output_on_failure=True)


def parse_key_values(text: str) -> dict[str, str]:
    """`KEY=value` lines (os-release, `timedatectl show`); quotes around values removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def parse_words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words (cgroup.controllers, a kernel command line)."""
    return tuple(text.split())


def parse_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def parse_first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def parse_text(text: str) -> str:
    return text


@dataclass
class NodeFacts:
    """The facts read from one node: name -> parsed value (None: absent or not readable)."""

    node: str
    values: dict[str, Any] = field(default_factory=dict)
    # For the plan's markdown: which command each fact came from, and why a read failed.
    notes: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value


def parse_result(fact: Fact, exit_code: int, stdout: str) -> Any:
    """The parsed value of one read, given the command's exit code and stdout."""
    if exit_code != 0 and not fact.output_on_failure:
        return None
    if exit_code != 0 and not stdout.strip():
        return None
    return fact.parse(stdout)


def read_facts(sessions: Any, node: str, facts: tuple[Fact, ...]) -> NodeFacts:
    """Runs each fact's command on `node` through `sessions` (an SSH `NodeSessions` or a recorded
    fake with the same `run` and `run_many`) and parses the output, logging one line for the node
    rather than every command and its output. Connection errors propagate.

    The reads go in one remote shell (`run_many`: one SSH channel for the step's reads on the
    node, not one per command), each with its own exit code, output and timeout; a read that
    sends a secret on its stdin (the token compare) keeps a channel of its own.
    """
    shared = [f for f in facts if f.stdin is None]
    results = dict(
        zip(
            (f.name for f in shared),
            sessions.run_many(node, [RemoteCommand(f.argv, f.sudo, f.timeout_s) for f in shared]),
            strict=True,
        )
    )
    for fact in facts:
        if fact.stdin is not None:
            results[fact.name] = sessions.run(
                node,
                list(fact.argv),
                sudo=fact.sudo,
                check=False,
                stdin=fact.stdin,
                timeout_s=fact.timeout_s,
                # Every log line is an event the run stores: a read's output is in the plan, so
                # only a line per node says what was read.
                quiet=True,
            )
    out = NodeFacts(node)
    for fact in facts:
        result = results[fact.name]
        out.values[fact.name] = parse_result(fact, result.exit_code, result.stdout)
        if result.exit_code != 0:
            tail = (result.stderr or "").strip().splitlines()[-1:] or [""]
            out.notes[fact.name] = f"exit {result.exit_code}: {tail[0][:200]}"
    log = getattr(sessions, "log", None)
    if log is not None and facts:
        failed = [f"{name} ({note})" for name, note in out.notes.items()]
        log.info(
            f"[{node}] read {len(facts)} facts: {', '.join(f.name for f in facts)}"
            + (f"; not readable: {', '.join(failed)}" if failed else "")
        )
    return out


def facts_from_mapping(node: str, values: Mapping[str, Any]) -> NodeFacts:
    return NodeFacts(node, dict(values))
