"""What a person reads in the UI about a step: the per-node plan as markdown, the counts, and
whether every node converged."""

from collections.abc import Sequence

import dagster as dg

from platform_assets.core.plan import NodePlan
from resources.ssh import NodeError


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plans_markdown(plans: Sequence[NodePlan], applied: bool) -> str:
    """The per-node diff a person reads in the UI."""
    out: list[str] = []
    for plan in plans:
        verb = "applied" if applied else "planned"
        head = f"### {plan.node}: "
        if plan.problem:
            count = len(plan.changes)
            out.append(
                head + f"{count} change{'' if count == 1 else 's'} planned, "
                f"cannot be applied yet: {plan.problem}"
            )
        elif not plan.changes:
            out.append(head + "no changes (converged)")
        else:
            count = len(plan.changes)
            out.append(
                head
                + f"{count} change{'' if count == 1 else 's'} {verb}"
                + ("" if plan.contacted else " (facts unknown: node not contacted)")
            )
        if plan.changes:
            out.append("")
            out.append("| change | before | after | commands |")
            out.append("| --- | --- | --- | --- |")
            for change in plan.changes:
                cmds = "<br>".join(f"`{_cell(c.shell)}`" for c in change.commands)
                reboot = " (reboot)" if change.needs_reboot else ""
                out.append(
                    f"| {_cell(change.name)}{reboot} | {_cell(change.before)} | "
                    f"{_cell(change.after)} | {cmds} |"
                )
            for change in plan.changes:
                if change.detail and plan.contacted:
                    out += ["", f"{change.name}:", "", "```diff", change.detail, "```"]
        out.append("")
    return "\n".join(out)


def node_errors(outcomes: dict) -> dict[str, NodeError]:
    return {name: o for name, o in outcomes.items() if isinstance(o, NodeError)}


def fail_if_any_node_failed(outcomes: dict, step: str) -> None:
    errors = node_errors(outcomes)
    if errors:
        lines = "\n".join(f"- {e}" for e in errors.values())
        raise dg.Failure(
            description=f"{step} failed on {', '.join(errors)} (the other nodes finished):\n"
            f"{lines}",
            metadata={"failed_nodes": ", ".join(errors)},
        )


def step_metadata(outcomes: dict, applied: bool, extra: dict | None = None):
    """Markdown plan per node plus changed/unchanged counts."""
    plans: list[NodePlan] = []
    error_lines: list[str] = []
    for name, outcome in outcomes.items():
        if isinstance(outcome, NodeError):
            error_lines.append(f"### {name}: failed\n\n{outcome.reason}\n")
        else:
            plans.append(outcome.plan)
    changes = sum(len(p.changes) for p in plans)
    changed_nodes = [p.node for p in plans if p.changes]
    mode = "apply" if applied else "plan"
    body = plans_markdown(plans, applied=applied) + "\n".join(error_lines)
    metadata = {
        "mode": mode,
        "dagster/row_count": changes,
        "changes": changes,
        "nodes_changed": len(changed_nodes),
        "nodes_unchanged": len([p for p in plans if not p.changes]),
        "nodes_failed": len(error_lines),
        "plan": dg.MetadataValue.md(body or "no nodes in this step"),
        **(extra or {}),
    }
    return metadata


def converged_check(outcomes: dict, applied: bool, asset_key: str) -> dg.AssetCheckResult:
    rows = []
    passed = True
    for name, outcome in outcomes.items():
        if isinstance(outcome, NodeError):
            rows.append(f"| {name} | failed: {outcome.reason[:200]} |")
            passed = False
        elif not outcome.plan.contacted:
            rows.append(f"| {name} | not contacted (facts unknown) |")
            passed = False
        elif outcome.converged:
            rows.append(f"| {name} | converged |")
        elif outcome.remaining is None:
            rows.append(f"| {name} | {len(outcome.plan.changes)} changes pending (plan mode) |")
            passed = False
        else:
            left = ", ".join(c.name for c in outcome.remaining)
            rows.append(f"| {name} | NOT converged after apply: {left} |")
            passed = False
    converged = sum(1 for row in rows if row.endswith("| converged |"))
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="converged",
        passed=passed,
        description=f"{converged} of {len(rows)} nodes converged",
        # Pending changes in plan mode are expected, not an error.
        severity=dg.AssetCheckSeverity.ERROR if applied else dg.AssetCheckSeverity.WARN,
        metadata={
            "nodes": dg.MetadataValue.md("| node | state |\n| --- | --- |\n" + "\n".join(rows))
        },
    )
