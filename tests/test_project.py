"""The project's files agree with each other: pins, MLproject parameters, CLI options."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from mbgd.cli.main import main

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def pyproject_ranges() -> dict[str, SpecifierSet]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return {(r := Requirement(line)).name: r.specifier for line in project["dependencies"]}


def constraint_pins() -> dict[str, str]:
    lines = (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
    return dict(line.lower().split("==") for line in lines if line and not line.startswith("#"))


def conda_pins() -> dict[str, str]:
    conda = yaml.safe_load((PROJECT_ROOT / "conda.yaml").read_text())
    pip_list = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    return dict(pin.split("==") for pin in pip_list)


def test_every_dependency_is_a_range_with_both_ends() -> None:
    for name, specifier in pyproject_ranges().items():
        operators = {spec.operator for spec in specifier}
        assert operators == {">=", "<"}, name


@pytest.mark.parametrize(
    ("name", "tested"),
    [
        ("mlflow", "3.17.2"),
        ("mlflow", "3.18.0"),
        ("optuna", "5.0.0"),
        ("optuna", "5.1.0"),
        ("torch", "2.13.0"),
    ],
)
def test_the_ranges_admit_the_versions_the_tests_pass_on(name: str, tested: str) -> None:
    assert pyproject_ranges()[name].contains(tested)
    assert not pyproject_ranges()[name].contains("99.0")


def test_constraints_pin_every_dependency_within_its_range_and_torch_at_2_13_0() -> None:
    pins = constraint_pins()
    for name, specifier in pyproject_ranges().items():
        assert specifier.contains(pins[name]), name
    assert pins["torch"] == "2.13.0"  # the CPU wheel on this machine's disk: a newer torch is a CUDA download


def test_conda_env_pins_what_the_constraints_pin() -> None:
    assert conda_pins() == {name: constraint_pins()[name] for name in pyproject_ranges()}


def test_installed_versions_are_within_the_ranges() -> None:
    from importlib.metadata import version

    for name, specifier in pyproject_ranges().items():
        assert specifier.contains(version(name).split("+")[0]), name


def test_the_adapters_verified_versions_are_within_the_ranges() -> None:
    from mbgd.studies import optuna_internals
    from mbgd.tracking import mlflow_internals

    assert all(pyproject_ranges()["mlflow"].contains(v) for v in mlflow_internals.VERIFIED_VERSIONS)
    assert all(pyproject_ranges()["optuna"].contains(v) for v in optuna_internals.VERIFIED_VERSIONS)


ENTRY_POINTS = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_every_mlproject_parameter_reaches_a_cli_option(entry_point: str) -> None:
    spec = ENTRY_POINTS[entry_point]
    command = " ".join(spec["command"].split())
    match = re.search(r"python -m mbgd ([\w-]+)", command)
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
