"""The reboot step's facts: the pending boot command line, the running kernel's cgroup
controllers and the boot id (it changes at every boot)."""

from platform_assets.core.facts import cat_fact, parse_first_line, parse_words
from platform_assets.node_prep.facts import CMDLINE_TXT
from platform_assets.preflight.facts import CGROUP_CONTROLLERS

BOOT_ID = cat_fact("boot_id", "/proc/sys/kernel/random/boot_id", parse_first_line)


REBOOT_FACTS = (
    cat_fact("cmdline_txt", CMDLINE_TXT, parse_words),
    CGROUP_CONTROLLERS,
)
