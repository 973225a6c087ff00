"""README.md's shell commands run as written, so the README cannot drift from the CLI.

Which commands: those in fenced blocks whose info string is empty, sh, bash, shell or console
(in a console block, the lines after a `$ ` prompt); output is fenced as ```text. A trailing
`\\` joins a line to the next; `#` comments are dropped.

How they run: in the README's order, each through bash in one scratch directory, with this
checkout's gandist first on PATH and HOME holding the few images the README's examples shard
(~/photos, ~/cells, ~/facades). `gandist train` gets --dry-run (the whole config composed and
checked, no training), and its config must also fit the shard set at its data.url when an
earlier command wrote one: the check training makes before any worker starts.

A command a CPU cannot run in seconds (a demo, a cluster, a run that has trained) carries
`# not run by tests: <why>` in the README, after the command or on a line of its own, which
marks every command after it in its block. Everything else runs and must exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SHELL_INFO = {"", "sh", "bash", "shell", "console"}
MARK = re.compile(r"#\s*not run by tests:\s*(.*)")
COMMENT = re.compile(r"(?:^|\s)#.*$")  # the README's commands quote no '#'


@dataclass
class Command:
    text: str  # continuations joined, comments dropped
    skip: Optional[str]  # why the README says it is not run


def shell_commands(markdown: str) -> list[Command]:
    commands: list[Command] = []
    lines = iter(markdown.splitlines())
    for line in lines:
        fence = re.match(r"\s*```\s*(\S*)", line)
        if not fence:
            continue
        body = []
        for inner in lines:
            if re.match(r"\s*```\s*$", inner):
                break
            body.append(inner.strip())
        if fence.group(1).lower() in SHELL_INFO:
            commands += block_commands(body, console=fence.group(1).lower() == "console")
    return commands


def block_commands(body: list[str], console: bool) -> list[Command]:
    commands, block_skip, pending = [], None, ""
    for line in body:
        if console and not pending:
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        mark = MARK.search(line)
        command = COMMENT.sub("", line).strip()
        if not command:
            block_skip = mark.group(1) if mark else block_skip
        else:
            commands.append(Command(" ".join(command.split()), mark.group(1) if mark else block_skip))
    return commands


class Shell:
    """A scratch directory to run README commands in, as a reader's shell would."""

    def __init__(self, root: Path) -> None:
        self.cwd, home, bin_dir = root / "work", root / "home", root / "bin"
        for path in (self.cwd, bin_dir):
            path.mkdir()
        write_images(home)
        # This checkout's gandist, whatever gandist the venv has installed.
        (bin_dir / "gandist").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gandist.cli "$@"\n')
        (bin_dir / "gandist").chmod(0o755)
        self.env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

    def run(self, command: str) -> Optional[str]:
        """None, or why the command failed."""
        train = re.match(r"gandist train\b", command) and not re.search(r"--(dry-run|help)\b", command)
        if train:
            command = command.replace("gandist train", "gandist train --dry-run", 1)
        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            return f"exit {done.returncode}: {(done.stderr or done.stdout)[-1500:]}"
        return self.data_misfit(shlex.split(command)[3:]) if train else None

    def data_misfit(self, args: list[str]) -> Optional[str]:
        from gandist.config import ConfigError, compose_config
        from gandist.data.checks import check_data_fits
        from gandist.data.manifest import Manifest

        cfg = compose_config([a for a in args if "=" in a and not a.startswith("-")])
        shards = self.cwd / cfg.data.url  # an absolute or remote url stays itself, or is not here
        if not (shards / "manifest.json").exists():
            return None
        try:
            check_data_fits(cfg, Manifest.load(str(shards)))
        except ConfigError as e:
            return f"does not fit its shards: {e}"
        return None


def write_images(home: Path, n: int = 6) -> None:
    """The folders the README's examples shard, a few small images each: photos at any depth,
    cells as images/ + masks/ of class ids 0-2, facades as A/ + B/ pairs."""
    rng = np.random.default_rng(0)
    folders = {"photos/holiday": "png", "cells/images": "jpg", "facades/A": "png", "facades/B": "jpg"}
    for folder, ext in folders.items():
        (home / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(home / folder / f"{i}.{ext}")
    (home / "cells" / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 3, (40, 48), dtype=np.uint8)).save(home / "cells" / "masks" / f"{i}.png")


@pytest.fixture
def shell(tmp_path) -> Shell:
    return Shell(tmp_path)


def test_readme_commands_run_as_written(shell):
    commands = shell_commands(README.read_text())
    run = [c.text for c in commands if c.skip is None]
    failures = [f"{c}\n  {why}" for c in run if (why := shell.run(c))]
    assert not failures, "README commands that fail (fix the README or the CLI):\n" + "\n".join(failures)
    # The extraction found the worked examples, not nothing.
    assert {"shard", "inspect", "train"} <= {c.split()[1] for c in run if c.startswith("gandist ")}
    assert all(c.skip for c in commands if c.text.startswith(("make ", "kubectl ", "gandist submit ")))


def test_a_renamed_flag_or_key_in_a_readme_command_fails(shell):
    """What the test above is for: the README's own commands, with a flag or a config key renamed."""
    run = [c.text for c in shell_commands(README.read_text()) if c.skip is None]
    shard = next(c for c in run if c.startswith("gandist shard") and " --size " in c)
    train = next(c for c in run if c.startswith("gandist train") and " run.name=" in c)
    assert "unrecognized arguments: --sizes" in (shell.run(shard.replace(" --size ", " --sizes ")) or "")
    assert "unknown config key 'run.nam'" in (shell.run(train.replace(" run.name=", " run.nam=")) or "")


def test_a_train_command_its_shards_do_not_fit_fails(shell, shapes_url):
    """--dry-run alone would pass this: the shards hold 32-pixel images."""
    why = shell.run(f"gandist train task=segment data.url={shapes_url} model.resolution=64 run.name=x")
    assert why and "does not fit its shards" in why and "model.resolution=32" in why


def test_commands_are_split_joined_and_marked():
    text = "\n".join([
        "```sh", "gandist shard a b \\", "  --size 8   # a comment", "make x  # not run by tests: slow",
        "# not run by tests: needs a cluster", "ray job list", "```",
        "```text", "step 1/2 | D 0.1", "```",
        "```console", "$ gandist inspect b", "shard set : b", "```"])
    assert shell_commands(text) == [Command("gandist shard a b --size 8", None), Command("make x", "slow"),
                                    Command("ray job list", "needs a cluster"), Command("gandist inspect b", None)]
