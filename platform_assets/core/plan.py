"""Planning: desired state + facts -> the changes that close the gap, as pure functions.

A step's planner compares what the inventory wants with the facts read from the node and returns
`Change`s, one per thing that differs, each with `before`, `after` and the `Command`s that make it
so. Nothing that already matches produces a change, so a second apply plans nothing. Secrets
never appear in `before`, `after` or a command line.
"""

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

from platform_assets.core.commands import Command, write_file


class PlanError(ValueError):
    """The node is in a state planning cannot fix; the message names the node and what to do."""


MANAGED = "# Managed by PiClusterOps; changes here are overwritten by node prep."


@dataclass(frozen=True)
class Change:
    name: str
    before: str
    after: str
    commands: tuple[Command, ...]
    needs_reboot: bool = False
    detail: str = ""  # a file's unified diff (or new content), shown under the plan table


@dataclass
class NodePlan:
    node: str
    changes: list[Change] = field(default_factory=list)
    contacted: bool = True
    problem: str | None = None  # why nothing may be applied on this node

    @property
    def commands(self) -> list[Command]:
        return [c for change in self.changes for c in change.commands]


def _summary(text: str | None) -> str:
    if text is None:
        return "absent"
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{len(lines)} lines" if len(lines) > 1 else (lines[0] if lines else "empty")


def plan_file(
    name: str,
    path: str,
    current: str | None,
    desired: str,
    mode: str = "0644",
    then: Sequence[Command] = (),
) -> list[Change]:
    if current == desired:
        return []
    return [
        Change(
            name,
            f"{path}: {_summary(current)}",
            f"{path}: {_summary(desired)}",
            (write_file(path, desired, mode), *then),
            detail=file_diff(path, current, desired),
        )
    ]


def file_diff(path: str, current: str | None, desired: str, limit: int = 60) -> str:
    lines = list(
        difflib.unified_diff(
            (current or "").splitlines(),
            desired.splitlines(),
            f"{path} (now)",
            f"{path} (planned)",
            lineterm="",
        )
    )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... {len(lines) - limit} more lines"]
    return "\n".join(lines)
