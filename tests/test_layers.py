"""Layer hygiene: networks and the Lab 3 Python API import no Lightning and leave matplotlib's
backend alone; no module reaches into another's private names; a lab never imports another lab
and ``common`` imports no lab."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGES = ("common", "lab1", "lab3", "lab4")


@pytest.mark.parametrize(
    "statement",
    [
        "import common.models, common.models.pretrained",
        "import lab1.models",
        "import lab4.models",
        "from lab3 import ImageStoryGenerator",
        "import lab1, lab4",  # what `python -m labN --help` needs to list the commands
    ],
)
def test_importing_a_network_or_an_api_loads_no_lightning_and_keeps_the_backend(statement):
    code = (
        "import sys, matplotlib\n"
        "backend = matplotlib.get_backend()\n"
        f"{statement}\n"
        "assert 'lightning' not in sys.modules, 'lightning imported'\n"
        "assert 'lightning.pytorch' not in sys.modules\n"
        "assert matplotlib.get_backend() == backend, 'backend switched'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]


def imports_of(package: str):
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                yield path, node.module, [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name, []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_private_names_of_another(package):
    private = [
        f"{path.relative_to(REPO)}: from {module} import {name}"
        for path, module, names in imports_of(package)
        for name in names
        if name.startswith("_") and module != "__future__"
    ]
    assert not private


@pytest.mark.parametrize("package", PACKAGES)
def test_labs_import_no_other_lab_and_common_imports_no_lab(package):
    labs = {"lab1", "lab3", "lab4"} - {package}
    crossing = [
        f"{path.relative_to(REPO)}: {module}"
        for path, module, _ in imports_of(package)
        if module.split(".")[0] in labs
    ]
    assert not crossing


def string_values(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from string_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from string_values(value)
    elif isinstance(node, str):
        yield node


def test_no_config_writes_into_the_committed_results_by_default():
    """Commands write into results/ only when the user names it (--output, --output_dir)."""
    import yaml

    offenders = [
        f"{path.relative_to(REPO)}: {value}"
        for path in sorted((REPO / "configs").rglob("*.yaml"))
        for value in string_values(yaml.safe_load(path.read_text()))
        if value.startswith("results/")
    ]
    assert not offenders
