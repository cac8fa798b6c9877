"""Recorded outputs for the patch and node-health parsers: the shared pi-facts folder's and
this folder's `outputs/` (same header grammar: each names its source, or says SYNTHETIC)."""

import re
from pathlib import Path

from tests.platform.pi_facts import body as pi_fact

OUTPUTS = Path(__file__).parent / "outputs"
_HEADER = re.compile(r"^# [a-z/ ]+: |^#   ")


def output(name: str) -> str:
    lines = (OUTPUTS / name).read_text(encoding="utf-8").splitlines(keepends=True)
    i = 0
    while i < len(lines) and _HEADER.match(lines[i]):
        i += 1
    return "".join(lines[i:])


__all__ = ["output", "pi_fact"]
