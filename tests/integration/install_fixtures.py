"""A host of one role: a virtualenv with envpatrol installed from a clean copy of this checkout
with one extra, as an operator's `pip install 'envpatrol[EXTRA]'` would."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Left out of the copy: environments, earlier builds (setuptools would pack stale modules from
# build/ into the wheel) and the dashboard's npm tree.
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "var", "*.egg-info", "__pycache__", "node_modules", ".*_cache"
)


@dataclass(frozen=True)
class RoleInstall:
    directory: Path

    @property
    def python(self) -> Path:
        return self.directory / "bin" / "python"

    @property
    def envpatrol(self) -> Path:
        return self.directory / "bin" / "envpatrol"

    def can_import(self, module: str) -> bool:
        check = subprocess.run(
            [str(self.python), "-c", f"import {module}"],
            capture_output=True,
            cwd=self.directory,
            env=outside_the_checkout(),
            check=False,
        )
        return check.returncode == 0

    def run(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`envpatrol ARGS` from this install only: the checkout is not on its path."""
        return subprocess.run(
            [str(self.envpatrol), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=outside_the_checkout(env),
            check=False,
        )


def outside_the_checkout(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without PYTHONPATH, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra or {})
    return env


def install_role(directory: Path, extra: str) -> RoleInstall:
    source = directory / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_COPIED)
    env_dir = directory / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    role = RoleInstall(env_dir)
    install = subprocess.run(
        [str(role.python), "-m", "pip", "install", "--quiet", f"{source}[{extra}]"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    return role
