"""The project's files agree with each other: pins, MLproject parameters, CLI options."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from mbgd.cli.main import main

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return dict(pin.split("==") for pin in project["dependencies"])


def conda_pins() -> dict[str, str]:
    conda = yaml.safe_load((PROJECT_ROOT / "conda.yaml").read_text())
    pip_list = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    return dict(pin.split("==") for pin in pip_list)


def test_every_dependency_is_pinned_exactly_and_torch_is_2_13_0() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert all("==" in pin for pin in project["dependencies"])
    assert pyproject_pins()["torch"] == "2.13.0"


def test_conda_env_carries_the_same_pins_as_pyproject() -> None:
    assert conda_pins() == pyproject_pins()


def test_installed_versions_are_the_pinned_ones() -> None:
    from importlib.metadata import version

    for name, pinned in pyproject_pins().items():
        assert version(name).split("+")[0] == pinned, name


ENTRY_POINTS = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_every_mlproject_parameter_reaches_a_cli_option(entry_point: str) -> None:
    spec = ENTRY_POINTS[entry_point]
    command = " ".join(spec["command"].split())
    match = re.search(r"python -m mbgd (\w+)", command)
    assert match, command
    click_command = main.commands[match.group(1)]
    options = {opt for param in click_command.params for opt in param.opts}
    for name in spec["parameters"]:
        option = "--" + name.replace("_", "-")
        assert option in options, f"{entry_point}: {option} is not an option of mbgd {match.group(1)}"
        assert f"{option} {{{name}}}" in command, f"{entry_point}: parameter {name} is not passed as {option}"


def test_license_and_citation_name_the_package_as_pyproject_does() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (PROJECT_ROOT / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((PROJECT_ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == project["version"]
    assert citation["license"] == project["license"]
    assert citation["title"].startswith("mbgd")
