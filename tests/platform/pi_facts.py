"""Reads the published Raspberry Pi command outputs in the shared pi-facts folder.

Header grammar (see that folder's README): lines matching `^# [a-z/ ]+: ` or `^#   ` are the
header; the body starts at the first line that matches neither (bodies may start with '#').
"""

import os
import re
from pathlib import Path

PI_FACTS = Path(os.environ.get("PICLUSTER_PI_FACTS", "/work/shared/data/pi-facts"))
_HEADER = re.compile(r"^# [a-z/ ]+: |^#   ")


def body(name: str) -> str:
    lines = (PI_FACTS / name).read_text(encoding="utf-8").splitlines(keepends=True)
    i = 0
    while i < len(lines) and _HEADER.match(lines[i]):
        i += 1
    return "".join(lines[i:])
