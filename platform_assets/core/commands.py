"""Commands a step runs on a node: an argv, whether it needs root, and what goes in on stdin.

Commands are argv lists; the SSH layer quotes every argument, and `Command.shell` shows the same
text (`resources.ssh.command_text`, the one place a command becomes text). Secrets (the K3s join
token) travel only as a command's stdin and never appear in a command line.
"""

from dataclasses import dataclass, field

from resources.ssh import command_text


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    sudo: bool = True
    # Not in the repr: it may be a secret (the K3s token is written from stdin).
    stdin: bytes | None = field(default=None, repr=False)
    # Seconds the command may take; None: the SSH resource's command_timeout_s.
    timeout_s: float | None = None
    # What to do on the node if the command is killed half-way (a timeout, a lost connection).
    if_interrupted: str = ""

    @property
    def shell(self) -> str:
        """The command line as the node runs it, every argument quoted."""
        line = command_text(self.argv, sudo=self.sudo)
        if self.stdin is not None:
            line += f"  # stdin: {len(self.stdin)} bytes"
        return line


def cmd(
    *argv: str,
    sudo: bool = True,
    stdin: str | bytes | None = None,
    timeout_s: float | None = None,
    if_interrupted: str = "",
) -> Command:
    """A command; root (`sudo -n`) unless `sudo=False`, text on stdin encoded as UTF-8."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return Command(tuple(argv), sudo, data, timeout_s, if_interrupted)


def write_file(path: str, content: str, mode: str = "0644") -> Command:
    """Writes a whole file from stdin, creating folders, owned by root."""
    return cmd(
        "install", "-D", "-m", mode, "-o", "root", "-g", "root", "/dev/stdin", path, stdin=content
    )
