"""The client package: one source for both clients, installable with the project's lock."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def test_the_sync_client_is_generated_from_the_async_one():
    result = subprocess.run(
        [sys.executable, str(REPO / "client" / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_clients_dependencies_are_pinned_in_the_lock_files():
    """`make install` installs the client with --no-deps: the lock must hold what it needs."""
    project = tomllib.loads((REPO / "client" / "pyproject.toml").read_text(encoding="utf-8"))
    for lock in ("main.lock", "dev.lock"):
        pins = dict(
            re.findall(
                r"^([A-Za-z0-9_.-]+)==([^\s\\]+)",
                (REPO / "requirements" / lock).read_text(encoding="utf-8"),
                re.M,
            )
        )
        pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
        for line in project["project"]["dependencies"]:
            requirement = Requirement(line)
            pinned = pins.get(requirement.name.lower())
            assert pinned, f"{requirement.name} is not in requirements/{lock}"
            assert requirement.specifier.contains(pinned), f"{lock}: {requirement} vs {pinned}"


def test_the_package_is_typed():
    package = REPO / "client" / "src" / "tokenworks_client"
    assert (package / "py.typed").exists()
