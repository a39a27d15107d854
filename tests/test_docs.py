"""README.md and docs/: every relative link resolves, and every `mbgd` option they name exists."""

import re
from pathlib import Path

import click
import pytest

from mbgd.cli.main import main

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def options_of(command: click.Command) -> set[str]:
    names = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    return {name for name in names if name.startswith("--")} | {"--help"}


COMMANDS = {name: options_of(command) for name, command in main.commands.items()}
ALL_OPTIONS = set().union(*COMMANDS.values())


def test_the_pages_exist() -> None:
    assert (PROJECT_ROOT / "README.md").is_file()
    assert len(PAGES) > 1, "docs/ holds the pages README links to"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name} links to missing files: {broken}"


def code(text: str) -> list[str]:
    """The lines of the page's code blocks and its inline code spans."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    prose = re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.M | re.S)
    return lines + re.findall(r"`([^`\n]+)`", prose)


def mbgd_invocations(text: str) -> list[tuple[str, str]]:
    """(command, the rest of the line) for every `mbgd <command> ...` the page shows as code."""
    found = []
    for snippet in code(text):
        for match in re.finditer(r"(?:^|[\s;&(])(?:\.venv/bin/)?mbgd ([a-z][a-z-]*)(.*)", snippet):
            if re.search(r"(?:^|\s)-[A-Za-z]\s*$", snippet[: match.start(1) - len("mbgd ")]):
                continue  # a value, as in `createdb -O mbgd optuna` (the database user mbgd)
            found.append((match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_mbgd_command_and_option_shown_exists(page: Path) -> None:
    unknown = []
    for command, rest in mbgd_invocations(page.read_text()):
        if command not in COMMANDS:
            unknown.append(f"mbgd {command}")
            continue
        rest = rest.split("#", 1)[0]  # a shell comment after the command
        unknown += [
            f"mbgd {command} {option}" for option in OPTION.findall(rest) if option not in COMMANDS[command]
        ]
    assert not unknown, f"{page.name} names what mbgd does not have: {unknown}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_option_in_an_option_table_exists(page: Path) -> None:
    rows = [line for line in page.read_text().splitlines() if re.match(r"\| `--", line)]
    unknown = [
        option for row in rows for option in OPTION.findall(row.split("|")[1]) if option not in ALL_OPTIONS
    ]
    assert not unknown, f"{page.name}'s option tables name options no mbgd command has: {unknown}"


def test_the_layout_names_only_files_that_exist() -> None:
    """The project's files; the package's block is tests/test_layout.py's."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```", 2)[1]
    for line in layout.splitlines():
        first = line.split()[0] if line.strip() else ""
        for path in first.rstrip(",").split(","):
            if path and "*" not in path:
                assert (PROJECT_ROOT / path).exists(), path
