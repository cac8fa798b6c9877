"""What a node would change in a patch: its upgradable packages, its running and installed
kernels, its K3s release. Read-only commands with pure parsers (tests/patching/test_facts.py).

Raspberry Pi OS creates no /run/reboot-required (only unattended-upgrades' kernel hook does), so
whether a patch needs a reboot is read from the kernels: the running one (`uname -r`) against
the newest one of the same flavour installed in /lib/modules.
"""

import re
from dataclasses import dataclass

from platform_assets.core.facts import Fact, parse_first_line
from platform_assets.k3s.facts import k3s_version_fact

MODULES_DIR = "/lib/modules"
# Kernel packages: Raspberry Pi OS bookworm/trixie (`linux-image-rpi-2712`, ...) and the older
# `raspberrypi-kernel`.
KERNEL_PACKAGE = re.compile(r"^(linux-image-|raspberrypi-kernel)")


@dataclass(frozen=True)
class Upgrade:
    package: str
    installed: str
    candidate: str

    @property
    def kernel(self) -> bool:
        return bool(KERNEL_PACKAGE.match(self.package))


_UPGRADABLE = re.compile(r"^(\S+?)/\S+\s+(\S+)\s+\S+\s+\[upgradable from: ([^\]]+)\]")


def parse_upgradable(text: str) -> tuple[Upgrade, ...]:
    """`apt list --upgradable`: `name/suite candidate arch [upgradable from: installed]` lines;
    the `Listing...` line and anything else is skipped."""
    out = []
    for line in text.splitlines():
        match = _UPGRADABLE.match(line.strip())
        if match:
            out.append(Upgrade(match.group(1), match.group(3).strip(), match.group(2)))
    return tuple(out)


def parse_lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def kernel_key(release: str) -> tuple:
    """Sort key for kernel releases: the numbers compare as numbers (6.12.47 > 6.6.74)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", release) if p)


def kernel_flavour(release: str) -> str:
    """The build a Pi boots: `2712` (16 KB pages, Pi 5), `v8`, `16k+`: the last `-` part. A
    Pi 5 has both the 2712 and the v8 kernels installed and boots one of them."""
    return release.rsplit("-", 1)[-1]


def newest_kernel(running: str, installed: tuple[str, ...]) -> str | None:
    same = [k for k in installed if kernel_flavour(k) == kernel_flavour(running)]
    return max(same, key=kernel_key, default=None)


def pending_kernel(running: str | None, installed: tuple[str, ...] | None) -> str | None:
    """The newer kernel the next boot would run, or None when the running one is the newest."""
    if not running or not installed:
        return None
    newest = newest_kernel(running, installed)
    if newest is None or kernel_key(newest) <= kernel_key(running):
        return None
    return newest


UPGRADABLE = Fact("upgradable", ("apt", "list", "--upgradable"), parse_upgradable)
RUNNING_KERNEL = Fact("running_kernel", ("uname", "-r"), parse_first_line)
INSTALLED_KERNELS = Fact("installed_kernels", ("ls", "-1", MODULES_DIR), parse_lines)
KERNEL_FACTS = (RUNNING_KERNEL, INSTALLED_KERNELS)
OS_PATCH_FACTS = (UPGRADABLE, *KERNEL_FACTS)
K3S_PATCH_FACTS = (k3s_version_fact(), RUNNING_KERNEL)
