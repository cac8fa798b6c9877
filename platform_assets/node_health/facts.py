"""A Pi's health as facts: SoC temperature, the firmware's throttling flags, root disk use.

Each is one read-only command with a pure parser (tested on outputs people published, see
tests/patching/test_node_health_facts.py). `vcgencmd` asks the firmware; the thermal zone is the
kernel's view of the same sensor, read when `vcgencmd` is missing (e.g. Ubuntu on a Pi).
"""

import re
from dataclasses import dataclass
from datetime import datetime

from platform_assets.core.facts import Fact, NodeFacts

THERMAL_ZONE = "/sys/class/thermal/thermal_zone0/temp"

# `vcgencmd get_throttled`: bits 0-3 are the state now, 16-19 the same "has occurred since
# boot" (raspberrypi/documentation, vcgencmd get_throttled; unchanged on the Pi 5's BCM2712,
# raspberrypi/documentation#3257).
THROTTLE_FLAGS = ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")


@dataclass(frozen=True)
class Throttling:
    raw: int

    def now(self, flag: str) -> bool:
        return bool(self.raw >> THROTTLE_FLAGS.index(flag) & 1)

    def since_boot(self, flag: str) -> bool:
        return bool(self.raw >> (16 + THROTTLE_FLAGS.index(flag)) & 1)

    def describe(self) -> str:
        now = [f for f in THROTTLE_FLAGS if self.now(f)]
        since = [f for f in THROTTLE_FLAGS if self.since_boot(f)]
        if not now and not since:
            return "none"
        parts = []
        if now:
            parts.append("now: " + ", ".join(now))
        if since:
            parts.append("since boot: " + ", ".join(since))
        return f"{self.raw:#x} (" + "; ".join(parts) + ")"


@dataclass(frozen=True)
class DiskUse:
    size_bytes: int
    used_bytes: int
    avail_bytes: int
    mount: str

    @property
    def used_fraction(self) -> float:
        # df's own Use%: used / (used + available); the root-reserved blocks count as full.
        total = self.used_bytes + self.avail_bytes
        return self.used_bytes / total if total else 0.0


def parse_throttled(text: str) -> Throttling | None:
    match = re.search(r"throttled=0x([0-9a-fA-F]+)", text)
    return Throttling(int(match.group(1), 16)) if match else None


def parse_measure_temp(text: str) -> float | None:
    """`temp=37.3'C` (an ASCII apostrophe, as vcgencmd prints it)."""
    match = re.search(r"temp=(-?\d+(?:\.\d+)?)'C", text)
    return float(match.group(1)) if match else None


def parse_thermal_zone(text: str) -> float | None:
    """Millidegrees Celsius, e.g. `48500`."""
    value = text.strip()
    return int(value) / 1000 if re.fullmatch(r"-?\d+", value) else None


def parse_df(text: str) -> DiskUse | None:
    """`df --output=size,used,avail,target -B1 /`: a header line, then bytes."""
    for line in text.splitlines()[1:]:
        words = line.split()
        if len(words) >= 4 and all(w.isdigit() for w in words[:3]):
            return DiskUse(int(words[0]), int(words[1]), int(words[2]), " ".join(words[3:]))
    return None


HEALTH_FACTS = (
    Fact("measure_temp", ("vcgencmd", "measure_temp"), parse_measure_temp),
    Fact("thermal_zone0", ("cat", THERMAL_ZONE), parse_thermal_zone),
    Fact("throttled", ("vcgencmd", "get_throttled"), parse_throttled),
    Fact("disk", ("df", "--output=size,used,avail,target", "-B1", "/"), parse_df),
)


@dataclass(frozen=True)
class NodeHealth:
    """One reading of one node."""

    node: str
    measured_at: datetime  # UTC
    soc_temp_c: float | None
    temp_source: str  # "vcgencmd", "thermal_zone0" or "none"
    throttling: Throttling | None
    disk: DiskUse | None

    def row(self) -> dict:
        """The reading as a warehouse row (see `NODE_HEALTH_COLUMNS`)."""
        t, d = self.throttling, self.disk
        row = {
            "node": self.node,
            "measured_at": self.measured_at.replace(tzinfo=None),
            "soc_temp_c": self.soc_temp_c,
            "temp_source": self.temp_source,
            "throttled_raw": t.raw if t else None,
        }
        for flag in THROTTLE_FLAGS:
            row[f"{flag}_now"] = t.now(flag) if t else None
            row[f"{flag}_since_boot"] = t.since_boot(flag) if t else None
        row["disk_size_bytes"] = d.size_bytes if d else None
        row["disk_used_bytes"] = d.used_bytes if d else None
        row["disk_avail_bytes"] = d.avail_bytes if d else None
        return row


def node_health(node: str, facts: NodeFacts, at: datetime) -> NodeHealth:
    temp, source = facts["measure_temp"], "vcgencmd"
    if temp is None:
        temp, source = facts["thermal_zone0"], "thermal_zone0"
    if temp is None:
        source = "none"
    return NodeHealth(node, at, temp, source, facts["throttled"], facts["disk"])


@dataclass(frozen=True)
class HealthLimits:
    max_soc_temp_c: float = 80.0  # the Pi 5 firmware throttles from 85 °C
    max_disk_used: float = 0.90


def health_problems(h: NodeHealth, limits: HealthLimits = HealthLimits()) -> list[str]:
    """Why the node should not be disrupted now (an empty list: it may). Flags that only say
    "since boot" are history, not a reason: a reboot clears them."""
    problems = []
    if h.soc_temp_c is None:
        problems.append("SoC temperature unreadable (neither vcgencmd nor the thermal zone)")
    elif h.soc_temp_c > limits.max_soc_temp_c:
        problems.append(f"SoC at {h.soc_temp_c:.1f} °C (limit {limits.max_soc_temp_c:g} °C)")
    if h.throttling is None:
        problems.append("throttling flags unreadable (`vcgencmd get_throttled`)")
    else:
        now = [f for f in THROTTLE_FLAGS if h.throttling.now(f)]
        if now:
            problems.append(f"firmware reports {', '.join(now)} now ({h.throttling.raw:#x})")
    if h.disk is not None and h.disk.used_fraction > limits.max_disk_used:
        problems.append(
            f"root disk {h.disk.used_fraction:.0%} used (limit {limits.max_disk_used:.0%})"
        )
    return problems
