"""README's layout block, made from the packages: each package of src/mbgd, from the bottom layer up, and its
modules, with the first sentence of each docstring (wrapped to 110 columns). `python tools/layout.py --write`
puts it in README.md; tests/test_layout.py checks that README holds what this makes."""

import ast
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- layout: tools/layout.py -->\n```\n"
LAYERS = ("runtime", "core", "studies", "tracking", "reports", "pipelines", "cli")  # from the bottom
WIDTH = 110
INDENT = 30


def first_sentence(path: Path) -> str:
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(docstring.split("\n\n", 1)[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def entry(name: str, text: str) -> list[str]:
    """`name` and `text` in two columns, the text wrapped to WIDTH."""
    wrapped = textwrap.wrap(text, WIDTH - INDENT)
    return [name.ljust(INDENT) + wrapped[0]] + [" " * INDENT + line for line in wrapped[1:]]


def layout_lines(source: Path) -> list[str]:
    lines = []
    for name in LAYERS:
        package = source / name
        lines += entry(f"src/mbgd/{package.name}/", first_sentence(package / "__init__.py"))
        for module in sorted(package.glob("*.py")):
            if module.name != "__init__.py":
                lines += entry(f"  {module.name}", first_sentence(module))
    return lines


def main(argv: list[str]) -> int:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    head, rest = readme.split(MARK, 1)
    body = "\n".join(layout_lines(ROOT / "src" / "mbgd")) + "\n"
    updated = head + MARK + body + "```" + rest.split("```", 1)[1]
    if "--write" in argv:
        readme_path.write_text(updated)
    else:
        print(body, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
