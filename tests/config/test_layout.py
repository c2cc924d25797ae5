"""The repository layout and the deployment files stay what the README says."""

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_platform_is_a_source_root_not_a_package():
    assert not (REPO / "platform" / "__init__.py").exists()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import platform, uuid; print(platform.system(), platform.__file__)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    system, module_file = result.stdout.split()
    assert system and not module_file.startswith(str(REPO))
    # Outside the repository too (the editable install must map the apps,
    # never platform/ itself).
    elsewhere = subprocess.run(
        [sys.executable, "-c", "import platform, config, tenants; print(platform.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    assert not elsewhere.stdout.strip().startswith(str(REPO))


def procfile() -> dict[str, str]:
    entries = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def test_compose_parses_and_runs_the_procfile_entries():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "model"} <= set(services)
    entries = procfile()
    assert set(entries) == {"web", "worker", "beat", "model"}
    for name in entries:
        command = services[name]["command"]
        # The same Procfile line that `make run` starts, picked by name.
        assert command[:2] == ["honcho", "start"] and command[-1] == name
        assert name in entries
    assert services["web"]["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"


def test_compose_sets_every_variable_production_requires():
    from config.settings.base import PRODUCTION_REQUIRED

    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    for name in ("web", "worker", "beat", "migrate"):
        assert set(PRODUCTION_REQUIRED) <= set(compose["services"][name]["environment"]), name


def test_dockerfile_is_multi_stage_and_runs_as_a_non_root_user():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert "--require-hashes -r /tmp/main.lock" in dockerfile


def test_procfile_commands_start_the_project_apps():
    entries = procfile()
    assert shlex.split(entries["web"])[:2] == ["gunicorn", "config.wsgi"]
    assert shlex.split(entries["worker"])[:4] == ["celery", "-A", "config", "worker"]
    assert shlex.split(entries["beat"])[:4] == ["celery", "-A", "config", "beat"]


def test_every_environment_variable_the_settings_read_is_in_the_readme():
    import re

    readme = (REPO / "README.md").read_text()
    names = set()
    for path in (REPO / "platform" / "config" / "settings").glob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', text))
        names |= set(re.findall(r'_require\("([A-Z_]+)"\)', text))
    names |= {"TEST_DATABASE_URL", "TEST_REDIS_URL", "REQUIRE_SERVICES", "WEB_BIND"}
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"README.md's variable table lacks {missing}"
