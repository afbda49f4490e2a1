"""The lock files pin what pyproject.toml names, and the tests run in the graders' locked environment.

A lock older than a change of pyproject.toml's dependencies fails here with the command that remakes it
(`make lock`); students install the students' lock (docs/environment.md), so it must hold the runtime at
the graders' versions: the numpy that grades an answer is the numpy it was written with.
"""

import importlib.metadata
import re
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
GRADERS_LOCK = ROOT / "requirements-test.lock"  # the runtime and the test extra: what .venv is built from
STUDENTS_LOCK = ROOT / "requirements.lock"  # the runtime
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = PROJECT["dependencies"]
TEST = PROJECT["optional-dependencies"]["test"]
# how uv notes, under a pin, that pyproject.toml asks for it
FROM_PYPROJECT = f"{PROJECT['name']} (pyproject.toml)"
REMAKE = "run `make lock`"


class Pin(NamedTuple):
    requirement: Requirement  # name==version, and the environments it is for (a marker)
    hashes: list
    via: list  # what asks for it: a package, or FROM_PYPROJECT

    @property
    def version(self):
        return Version(next(iter(self.requirement.specifier)).version)

    def applies_here(self):
        return self.requirement.marker is None or self.requirement.marker.evaluate()


def pins(lock):
    """The pins of a lock file as uv writes it: a requirement, its hashes, then comments naming the
    packages that ask for it."""
    found = []
    for line in lock.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("#"):
            asker = line.lstrip("#").strip().removeprefix("via").strip()
            if found and asker:
                found[-1].via.append(asker)
        elif line:
            requirement, *_ = line.split(" --hash=")
            found.append(Pin(Requirement(requirement), re.findall(r"--hash=(\S+)", line), []))
    return found


def by_name(lock):
    named = defaultdict(list)
    for pin in pins(lock):
        named[canonicalize_name(pin.requirement.name)].append(pin)
    return named


def extra_dependencies(requirement):
    """The names of the packages that `requirement`'s extras (psycopg[binary]) add, by the installed
    package's metadata (none when it is not installed: the environment's test says so)."""
    if not requirement.extras:
        return set()
    try:
        dependencies = importlib.metadata.requires(requirement.name) or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    names = set()
    for text in dependencies:
        dependency = Requirement(text)
        marker = dependency.marker
        if marker and not marker.evaluate({"extra": ""}) and any(
                marker.evaluate({"extra": extra}) for extra in requirement.extras):
            names.add(canonicalize_name(dependency.name))
    return names


def mismatches(lock, requirements):
    """How `lock` differs from pyproject.toml's `requirements`: one line each."""
    pinned = by_name(lock)
    wanted = [Requirement(text) for text in requirements]
    problems = []
    for requirement in wanted:
        versions = [pin.version for pin in pinned[canonicalize_name(requirement.name)]]
        if not versions:
            problems.append(f"{requirement.name} is not pinned")
        problems += [f"{requirement.name}=={version} is outside {requirement.specifier}"
                     for version in versions if not requirement.specifier.contains(version, prereleases=True)]
        problems += [f"{name} (of {requirement}) is not pinned" for name in extra_dependencies(requirement)
                     if name not in pinned]
    asked = {name for name, its_pins in pinned.items() if any(FROM_PYPROJECT in pin.via for pin in its_pins)}
    problems += [f"{name} is pinned for pyproject.toml, which no longer names it"
                 for name in sorted(asked - {canonicalize_name(requirement.name) for requirement in wanted})]
    return problems


def test_the_graders_lock_pins_what_pyproject_names():
    problems = mismatches(GRADERS_LOCK, RUNTIME + TEST)
    assert not problems, f"{GRADERS_LOCK.name} is older than pyproject.toml ({REMAKE}): {'; '.join(problems)}"


def test_the_students_lock_pins_the_runtime_at_the_graders_versions():
    problems = mismatches(STUDENTS_LOCK, RUNTIME)
    graders = {(name, pin.version) for name, its_pins in by_name(GRADERS_LOCK).items() for pin in its_pins}
    problems += [f"{name}=={pin.version} is not the graders' version"
                 for name, its_pins in by_name(STUDENTS_LOCK).items() for pin in its_pins
                 if (name, pin.version) not in graders]
    assert not problems, f"{STUDENTS_LOCK.name} is out of date ({REMAKE}): {'; '.join(problems)}"


def test_every_pin_has_its_hashes():
    """pip then checks each file it downloads against the lock (and refuses a lock with a pin without)."""
    assert [pin.requirement for lock in (GRADERS_LOCK, STUDENTS_LOCK) for pin in pins(lock)
            if not pin.hashes] == []


def test_the_tests_run_in_the_graders_locked_environment():
    """What the tests pass with is what the lock hands to the next grader (make builds .venv from it)."""
    differences = []
    for pin in filter(Pin.applies_here, pins(GRADERS_LOCK)):
        try:
            installed = Version(importlib.metadata.version(pin.requirement.name))
        except importlib.metadata.PackageNotFoundError:
            installed = "missing"
        if installed != pin.version:
            differences.append(f"{pin.requirement.name} {installed}, locked {pin.version}")
    assert not differences, (f"this environment is not the one of {GRADERS_LOCK.name} (make rebuilds .venv "
                             f"when the lock changes): {'; '.join(differences)}")
