"""``constraints.txt``: the exact versions the suite is tested with, refreshed from the venv (``make constraints``).

    python -m slrnet.constraints                  # rewrite constraints.txt and environment.yml's pins from this Python
    python -m slrnet.constraints --check          # exit 1 when they differ from what this Python has installed

``make install`` runs ``pip install -c constraints.txt -e ".[dev]"``: every package it installs, the dependencies of
dependencies included, gets the version written here, so two installs a month apart test the same code.
What is left out, and why:

* the package itself (installed editable) and pip / setuptools / wheel (as ``pip freeze`` leaves them out);
* **torch and what only torch needs** (sympy, mpmath, filelock, fsspec, the nvidia-* and triton wheels of a CUDA
  build): ``TORCH_SPEC`` picks the build, and a CUDA build pins its own versions of these, which a constraint
  would contradict (pip would then replace the chosen build). They are written as comments, for the record.

``environment.yml`` pins the same versions: each package of its pip section is rewritten as ``name==version`` (torch
and ``-e .`` stay as they are). ``tests/test_constraints.py`` checks the three files agree.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10: the same parser, as pip vendors it
    from pip._vendor import tomli as tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "slrnet"
TORCH = "torch"
NOT_FROZEN = {"pip", "setuptools", "wheel", "distribute"}   # what pip freeze leaves out
HEADER = """\
# The exact versions the suite is tested with (make test, make run): make install uses them through
#   pip install -c constraints.txt -e ".[dev]"
# Refresh from the virtualenv with `make constraints` (python -m slrnet.constraints): it rewrites this file and the
# pins of environment.yml, which must agree (tests/test_constraints.py). Constraints only fix versions: a package
# listed here is installed only when something requires it.
"""


def normalize(name: str) -> str:
    """PEP 503 name: ``Jinja2`` -> ``jinja2``, ``typing_extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, metadata.Distribution]:
    """Distributions importable by this Python, by normalised name (the first on sys.path wins, as for imports)."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) not in found:
            found[normalize(name)] = dist
    return found


def _editable(dist: metadata.Distribution) -> bool:
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(info.get("dir_info", {}).get("editable"))


def _requirements(requires: list[str], extras: set[str]) -> set[tuple[str, frozenset]]:
    """(name, extras) of the requirements that apply to this platform and to the given extras of their owner."""
    out = set()
    env = default_environment()
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
            out.add((normalize(req.name), frozenset(req.extras)))
    return out


def closure(roots: set[tuple[str, frozenset]], dists: dict[str, metadata.Distribution]) -> set[str]:
    """Installed packages reachable from ``roots`` through their (platform-applicable) requirements."""
    seen: set[tuple[str, frozenset]] = set()
    stack = list(roots)
    while stack:
        item = stack.pop()
        if item in seen or item[0] not in dists:
            continue
        seen.add(item)
        stack += _requirements(dists[item[0]].requires or [], set(item[1]))
    return {name for name, _ in seen}


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The runtime dependencies and every optional group of pyproject.toml."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"]) + [r for group in project.get("optional-dependencies", {}).values()
                                            for r in group]


def split_torch(dists: dict[str, metadata.Distribution], requirements: list[str]) -> tuple[set[str], set[str]]:
    """(pinned, torch_only): the installed names to pin, and torch with what only torch needs."""
    candidates = {n for n, d in dists.items() if n != PROJECT and n not in NOT_FROZEN and not _editable(d)}
    required_by_someone = {r for n in candidates for r, _ in _requirements(dists[n].requires or [], set())}
    roots = {(n, frozenset(e)) for n, e in _requirements(requirements, {""}) if n != TORCH}
    roots |= {(n, frozenset()) for n in candidates - required_by_someone - {TORCH}}   # installed by hand
    needed = closure(roots, dists)
    torch_only = (closure({(TORCH, frozenset())}, dists) - needed) & candidates
    return candidates - torch_only, torch_only


def render(dists: dict[str, metadata.Distribution], pinned: set[str], torch_only: set[str]) -> str:
    def line(name: str) -> str:
        return f"{dists[name].metadata['Name']}=={dists[name].version}"

    order = sorted(pinned, key=lambda n: dists[n].metadata["Name"].lower())
    python = ".".join(map(str, sys.version_info[:3]))
    torch_lines = [line(TORCH)] if TORCH in torch_only else ["(torch is not installed here)"]
    torch_lines += [line(n) for n in sorted(torch_only - {TORCH})]
    return (HEADER + f"# Python {python} (environment.yml: python={sys.version_info[0]}.{sys.version_info[1]})\n"
            "# Not pinned, so that TORCH_SPEC can choose the build (CPU / CUDA): torch and what only torch needs.\n"
            "# Tested with:\n" + "".join(f"#   {t}\n" for t in torch_lines)
            + "".join(f"{line(n)}\n" for n in order))


def read_constraints(text: str) -> dict[str, str]:
    """Normalised name -> version of the ``name==version`` lines (comments ignored)."""
    pins = {}
    for raw in text.splitlines():
        entry = raw.split("#", 1)[0].strip()
        if entry:
            name, sep, version = entry.partition("==")
            if not sep:
                raise ValueError(f"constraints.txt: {raw!r} is not name==version")
            pins[normalize(name.strip())] = version.strip()
    return pins


PIP_ENTRY = re.compile(r"^(?P<indent>\s+-\s+)(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<spec>\s*[=<>!~][^#]*?)?"
                       r"(?P<comment>\s*#.*)?\s*$")


def pin_environment(text: str, pins: dict[str, str]) -> str:
    """environment.yml with each pip entry known to ``pins`` written ``name==version`` (torch, ``-e .`` untouched)."""
    lines, in_pip = [], False
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if re.match(r"^\s+-\s+pip:\s*$", body):
            in_pip = True
        elif in_pip and body.strip() and not body.lstrip().startswith("#") and not re.match(r"^\s{4,}-", body):
            in_pip = False          # the pip section ended (a line less indented than its entries)
        match = PIP_ENTRY.match(body) if in_pip else None
        if match and normalize(match["name"]) in pins and normalize(match["name"]) != TORCH:
            body = f"{match['indent']}{match['name']}=={pins[normalize(match['name'])]}{match['comment'] or ''}"
            line = body + ("\n" if line.endswith("\n") else "")
        lines.append(line)
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slrnet.constraints", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (constraints.txt, environment.yml)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file would change")
    args = parser.parse_args(argv)
    dists = installed()
    pinned, torch_only = split_torch(dists, project_requirements(args.root / "pyproject.toml"))
    constraints = render(dists, pinned, torch_only)
    env_path = args.root / "environment.yml"
    environment = pin_environment(env_path.read_text(encoding="utf-8"), read_constraints(constraints))
    changed = []
    for path, text in ((args.root / "constraints.txt", constraints), (env_path, environment)):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            changed.append(path.name)
            if not args.check:
                from slrnet.utils import atomic_write_bytes

                atomic_write_bytes(path, text.encode("utf-8"))
    verb = "differ from this Python's packages" if args.check else "rewritten"
    print(f"{', '.join(changed)} {verb}" if changed else "constraints.txt and environment.yml are up to date",
          f"({len(pinned)} pinned; left to TORCH_SPEC: {', '.join(sorted(torch_only)) or 'none'})")
    return 1 if changed and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
