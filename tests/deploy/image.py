"""The image's build stage, read from deploy/image/Dockerfile and repeated in a folder.

No machine here has a container engine, so the Dockerfile itself is the one list of what the
image holds: this module parses its build stage (WORKDIR, ENV, COPY, `RUN uv sync ...`, the
pinned uv) and repeats it with the same uv, the same flags and the same files. Anything else in
the build stage is refused, so the Dockerfile cannot grow a step this copy silently skips.
"""

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "image" / "Dockerfile"


@dataclass
class Stage:
    name: str
    steps: list[tuple[str, list[str]]] = field(default_factory=list)  # (instruction, args)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def stages(text: str) -> list[Stage]:
    out: list[Stage] = []
    for word, rest in instructions(text):
        if word == "FROM":
            parts = rest.split()
            out.append(Stage(parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else ""))
        else:
            out[-1].steps.append((word, shlex.split(rest) if not rest.startswith("[") else [rest]))
    return out


def env_pairs(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args)


class NotReproducible(AssertionError):
    """The Dockerfile's build stage has a step this copy does not know how to repeat."""


def build(dockerfile_text: str, into: Path) -> tuple[Path, Stage]:
    """Repeats the build stage in `into`; returns the WORKDIR's copy and the final stage."""
    build_stage, final = stages(dockerfile_text)[0], stages(dockerfile_text)[-1]
    workdir: Path | None = None
    # This machine's way to the registry (its proxy, CA, uv cache) stays; nothing that would
    # point uv at another environment than the folder's own.
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    for word, args in build_stage.steps:
        if word == "WORKDIR":
            workdir = into / args[0].lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif word == "ENV":
            env.update(env_pairs(args))
        elif word == "COPY":
            *sources, dest = [a for a in args if not a.startswith("--")]
            target = workdir / dest
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target / src.name)
        elif word == "RUN" and args[:3] == ["pip", "install", "--no-cache-dir"]:
            wanted = args[3].removeprefix("uv==")
            have = subprocess.run(["uv", "--version"], capture_output=True, text=True).stdout
            if have.split()[1] != wanted:
                raise NotReproducible(f"the image pins uv {wanted}, this machine has {have}")
        elif word == "RUN" and args[:2] == ["uv", "sync"]:
            # The image's Python is 3.11 (python:3.11-slim); so is the one uv finds here.
            done = subprocess.run(
                ["uv", *args[1:], "--python", "3.11", "--quiet"],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                raise AssertionError(f"uv {' '.join(args[1:])} failed:\n{done.stderr[-3000:]}")
        else:
            raise NotReproducible(f"the build stage's `{word} {' '.join(args)}` is not repeated")
    assert workdir is not None, "the build stage has no WORKDIR"
    return workdir, final
