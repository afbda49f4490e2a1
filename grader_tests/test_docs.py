"""The README and docs/ show only commands that exist and link only to files that exist.

Every command they show (in code blocks and inline code: `course ...`, `.venv/bin/course ...`, `make ...`)
must name a real `course` subcommand and real options of it, taken from the argparse parser that
coursetools/cli.py builds, or a real target of the Makefile; every relative link must lead to a file (and
to a heading of it, when it names one). Fast: nothing runs but the parser's construction.
"""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from coursetools import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
COMMAND_PREFIXES = ("course ", ".venv/bin/course ", "make ")
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`([^`]+)`")  # a span may wrap to the next line
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
MAKE_RULE = re.compile(r"^([A-Za-z][\w.-]*(?:[ \t]+[A-Za-z][\w.-]*)*)[ \t]*:(?!=)", re.MULTILINE)


def course_parser():
    return cli.parser()


def make_targets():
    return {target for rule in MAKE_RULE.findall((ROOT / "Makefile").read_text()) for target in rule.split()}


def commands_in(text):
    """Commands shown in a page: code-block lines and inline code spans that start with a command."""
    shown = []
    for block in FENCE.findall(text):
        for line in block.splitlines()[1:-1]:
            line = line.strip().removeprefix("$ ")
            if line.startswith(COMMAND_PREFIXES):
                shown.append(line)
    for span in INLINE_CODE.findall(FENCE.sub("", text)):
        span = " ".join(span.split())
        if span.startswith(COMMAND_PREFIXES):
            shown.append(span)
    return shown


def words_of(command):
    """The command's words up to a shell comment."""
    try:
        return shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote: read it as plain words
        return command.split("#")[0].split()


def subparsers_of(parser):
    return next((action for action in parser._actions if isinstance(action, argparse._SubParsersAction)),
                None)


def command_problem(command, parser, targets):
    """What is wrong with one command shown in the docs, or None."""
    words = words_of(command)
    if not words:
        return None
    if words[0] == "make":
        named = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        unknown = [word for word in named if word not in targets]
        return f"{command!r}: no Makefile target {', '.join(unknown)}" if unknown else None
    path, rest = ["course"], words[1:]
    while (choices := subparsers_of(parser)) is not None:
        chosen = next((word for word in rest if not word.startswith("-")), None)
        if chosen not in choices.choices:
            if chosen is None and {"-h", "--help"} & set(rest):
                return None
            return (f"{command!r}: {' '.join(path)} has no subcommand {chosen!r} "
                    f"(one of {', '.join(choices.choices)})")
        parser, path = choices.choices[chosen], [*path, chosen]
        rest = rest[rest.index(chosen) + 1:]
    known = {option for action in parser._actions for option in action.option_strings}
    unknown = [option for word in rest for option in OPTION.findall(word.split("=")[0])
               if option not in known]
    return f"{command!r}: {' '.join(path)} has no option {', '.join(unknown)}" if unknown else None


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(text):
    anchors, seen = set(), {}
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        anchors.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return anchors


def link_problems(page, text):
    """Relative links of a page that lead nowhere: a missing file, or a heading the file lacks."""
    problems, name = [], page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
    for target in LINK.findall(INLINE_CODE.sub("", FENCE.sub("", text))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            problems.append(f"{name}: link to {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors_of(linked.read_text()):
            problems.append(f"{name}: link to {target}: no such heading")
    return problems


@pytest.fixture(scope="module")
def parser():
    return course_parser()


def test_the_docs_show_commands(parser):
    """The pages are read as intended: the README's own set-up commands are found."""
    shown = commands_in((ROOT / "README.md").read_text())
    assert "make demo" in " ".join(shown) and any(word.startswith("course grade") for word in shown)
    assert len(PAGES) > 1, "no page in docs/"


def test_every_command_shown_is_real(parser):
    targets = make_targets()
    problems = [f"{page.relative_to(ROOT)}: {problem}" for page in PAGES
                for command in commands_in(page.read_text())
                if (problem := command_problem(command, parser, targets))]
    assert not problems, "\n".join(problems)


def test_every_relative_link_leads_to_a_file():
    problems = [problem for page in PAGES for problem in link_problems(page, page.read_text())]
    assert not problems, "\n".join(problems)


def test_a_made_up_command_or_link_is_caught(parser, tmp_path):
    page = tmp_path / "fake.md"
    page.write_text(
        "# A page\n\n"
        "Grade with `course grade --workers 2 --student 'group2-*'`, then `make demo`.\n\n"
        "```\n"
        "course roster import roster.csv    # a real one\n"
        ".venv/bin/course export --to canvas out.csv --allow-pending\n"
        "course regrade activations\n"
        "course grade --wrokers 2\n"
        "course roster export roster.csv\n"
        "make deploy\n"
        "```\n\n"
        "Also `.venv/bin/course check --timeot 5 a.ipynb`. See [a page](#a-page), [none](missing.md), "
        "[here](fake.md#no-such-heading) and [the web](https://example.org/x).\n")
    shown = commands_in(page.read_text())
    problems = {command: command_problem(command, parser, make_targets()) for command in shown}
    assert len(shown) == 9 and not [problem for command, problem in problems.items() if problem and (
        command.startswith(("course roster import", ".venv/bin/course export", "course grade --workers"))
        or command == "make demo")], problems
    assert "no subcommand 'regrade'" in problems["course regrade activations"]
    assert "no option --wrokers" in problems["course grade --wrokers 2"]
    assert "no subcommand 'export'" in problems["course roster export roster.csv"]
    assert "no Makefile target deploy" in problems["make deploy"]
    assert "no option --timeot" in problems[".venv/bin/course check --timeot 5 a.ipynb"]
    assert link_problems(page, page.read_text()) == [
        "fake.md: link to missing.md: no such file",
        "fake.md: link to fake.md#no-such-heading: no such heading"]
