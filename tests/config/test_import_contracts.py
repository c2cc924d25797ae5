"""The contract file (.importlinter) really refuses an import against the app order.

lint-imports runs on throw-away trees of stub packages named like the apps, so
these tests prove the contract itself, whatever the real code does today.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS_CONTRACT = "Apps import only from apps below them"
APPS = ["tenants", "eventhooks", "valuechain", "annotation", "compute", "kpireports"]


def stub_tree(root: Path, imports: dict[str, str]) -> Path:
    """Every root package of the contract, each importing what `imports` gives it."""
    for package in [*APPS, "sitehealth", "config"]:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
        (root / package / "selectors.py").write_text(imports.get(package, ""))
    return root


def lint_imports(tree: Path, *args: str) -> subprocess.CompletedProcess:
    # Only the stub tree on the path (it shadows the installed apps), and no
    # cache written anywhere.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args, str(CONTRACT)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# Each app imports its neighbour below; config wires everything; sitehealth uses config.
ALLOWED = {
    "eventhooks": "import tenants.selectors\n",
    "valuechain": "from eventhooks import selectors\n",
    "annotation": "import valuechain.selectors\nimport tenants.selectors\n",
    "compute": "import annotation.selectors\n",
    "kpireports": "import compute.selectors\nimport tenants.selectors\n",
    "config": "".join(f"import {app}.selectors\n" for app in [*APPS, "sitehealth"]),
    "sitehealth": "import config\n",
}


def test_imports_down_the_order_keep_every_contract(tmp_path):
    result = lint_imports(stub_tree(tmp_path, ALLOWED))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_a_wrong_way_import_inside_a_function_breaks_the_layers_contract(tmp_path):
    wrong = {
        **ALLOWED,
        # The shape issue #9 removed: a low app reaching up from inside a function.
        "tenants": "def quality(user):\n    from annotation.selectors import x\n    return x\n",
    }
    result = lint_imports(stub_tree(tmp_path, wrong))
    assert result.returncode != 0
    assert f"{LAYERS_CONTRACT}" in result.stdout and "BROKEN" in result.stdout
    assert "tenants is not allowed to import annotation" in result.stdout
    assert "tenants.selectors -> annotation.selectors" in result.stdout


def test_an_app_importing_the_wiring_breaks_a_contract(tmp_path):
    wrong = {**ALLOWED, "compute": "import annotation.selectors\nfrom config import urls\n"}
    result = lint_imports(stub_tree(tmp_path, wrong))
    assert result.returncode != 0
    assert "compute is not allowed to import config" in result.stdout


def test_the_repository_keeps_its_contracts():
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'platform'}"}
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(CONTRACT)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
