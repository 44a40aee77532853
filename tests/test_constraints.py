"""Installs that do not drift: constraints.txt pins every package the suite is tested with (torch aside, which
TORCH_SPEC chooses), make install uses it, environment.yml pins the same versions, and ``make constraints``
(slrnet.constraints) writes both from the virtualenv."""
from __future__ import annotations

import re
import shutil
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

from slrnet import constraints as cons

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = (ROOT / "constraints.txt").read_text(encoding="utf-8")
PINS = cons.read_constraints(CONSTRAINTS)
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*$")


def split(requirement: str) -> tuple[str, str]:
    """(normalised name, version specifier) of a pip or conda requirement (``numpy==2.1``, ``python=3.11``)."""
    match = SPEC.match(requirement.split("#", 1)[0])
    assert match, f"cannot read {requirement!r}"
    return cons.normalize(match.group(1)), match.group(2).replace(" ", "")


def environment_sections() -> tuple[list[str], list[str]]:
    conda = [d for d in ENVIRONMENT["dependencies"] if isinstance(d, str)]
    pip = [r for d in ENVIRONMENT["dependencies"] if isinstance(d, dict) for r in d.get("pip", [])]
    return conda, pip


def constraints_python() -> str:
    match = re.search(r"^# Python (\d+\.\d+)\.\d+", CONSTRAINTS, re.M)
    assert match, "constraints.txt should say which Python it was made with ('# Python X.Y.Z')"
    return match.group(1)


def torch_record() -> str:
    match = re.search(r"^#\s+torch==(\S+)", CONSTRAINTS, re.M)
    assert match, "constraints.txt should record the torch it was tested with, as a comment ('#   torch==...')"
    return match.group(1)


# ----------------------------------------------------------------------------- the file itself

def test_every_line_is_an_exact_pin_and_torch_is_left_to_torch_spec():
    lines = [line for line in CONSTRAINTS.splitlines() if line.strip() and not line.startswith("#")]
    bad = [line for line in lines if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+", line)]
    assert not bad, f"constraints.txt lines that are not name==version: {bad}"
    assert len(PINS) == len(lines), "constraints.txt names a package twice"
    assert "slrnet" not in PINS, "the package itself is installed editable, not pinned"
    assert "torch" not in PINS, "torch must stay overridable by TORCH_SPEC: a comment, not a pin"
    assert torch_record()
    assert len(PINS) > 50, "constraints.txt should pin the dependencies' dependencies too (pip freeze), not a few"


def test_torch_record_agrees_with_the_makefile_default():
    default = re.search(r'install -q "torch==([^"]+)"', MAKEFILE)
    assert default, "the Makefile should install a default torch==X when none is importable"
    assert torch_record().split("+")[0] == default.group(1), \
        f"constraints.txt records torch {torch_record()}, make install's default is torch=={default.group(1)}"


def test_every_dependency_of_pyproject_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = [split(r)[0] for r in project["dependencies"]]
    extras = [split(r)[0] for group in project.get("optional-dependencies", {}).values() for r in group]
    missing = [name for name in runtime + extras if name != "torch" and name not in PINS]
    assert not missing, f"in pyproject.toml but not constraints.txt (run make constraints): {missing}"


# ----------------------------------------------------------------------------- make install uses it

def test_makefile_installs_with_the_constraints():
    installs = [line.strip() for line in MAKEFILE.splitlines() if re.search(r"pip install.*-e\s", line)]
    assert installs, "the Makefile has no pip install -e line"
    for line in installs:
        assert "-c constraints.txt" in line, f"the Makefile installs without the constraints: {line}"
    stamp = re.search(r"^\$\(STAMP\):(.*)$", MAKEFILE, re.M)
    assert stamp and "constraints.txt" in stamp.group(1).split(), \
        "make install should rerun when constraints.txt changes ($(STAMP): ... constraints.txt)"
    target = re.search(r"^constraints:.*\n((?:\t.*\n)+)", MAKEFILE, re.M)
    assert target and "slrnet.constraints" in target.group(1), "make constraints should run slrnet.constraints"


# ----------------------------------------------------------------------------- environment.yml agrees

def test_environment_yml_pins_the_same_versions():
    conda, pip = environment_sections()
    disagree, unpinned = [], []
    for entry in conda:
        name, spec = split(entry)
        if name == "python":
            assert spec.lstrip("=") == constraints_python(), \
                f"environment.yml asks for python {spec.lstrip('=')}; constraints.txt: {constraints_python()}"
        elif spec and spec.lstrip("=") != PINS.get(name):
            disagree.append(f"{entry} (constraints.txt: {PINS.get(name, 'absent')})")
    for entry in pip:
        if entry.strip().startswith("-"):
            continue                                      # -e . and -c constraints.txt
        name, spec = split(entry)
        if name == "torch":
            continue                                      # installed first, by the user's choice of build
        if not spec.startswith("=="):
            unpinned.append(entry)
        elif spec[2:] != PINS.get(name):
            disagree.append(f"{entry} (constraints.txt: {PINS.get(name, 'absent')})")
    assert not disagree, f"environment.yml disagrees with constraints.txt (run make constraints): {disagree}"
    assert not unpinned, f"environment.yml entries without ==version (run make constraints): {unpinned}"
    assert "-c constraints.txt" in [e.split("#", 1)[0].strip() for e in pip], \
        "environment.yml's pip section should read constraints.txt too (- -c constraints.txt)"


def test_pin_environment_rewrites_pip_entries_only():
    text = ("dependencies:\n  - python=3.11\n  - pip\n  - pip:\n      - torch>=2.1\n      - NumPy\n"
            "      - tqdm>=4   # progress\n      - -e .\n  - other\n")
    pins = {"numpy": "2.0.1", "tqdm": "4.66.0", "torch": "9", "pip": "24", "other": "1"}
    pinned = cons.pin_environment(text, pins)
    assert pinned == ("dependencies:\n  - python=3.11\n  - pip\n  - pip:\n      - torch>=2.1\n      - NumPy==2.0.1\n"
                      "      - tqdm==4.66.0   # progress\n      - -e .\n  - other\n")


# ----------------------------------------------------------------------------- the venv is what was tested

def test_the_installed_packages_have_the_constrained_versions():
    installed = {cons.normalize(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}
    drift = {name: (installed[name], version) for name, version in PINS.items()
             if name in installed and installed[name] != version}
    assert not drift, ("this environment is not the tested one (installed, constraints.txt): "
                       f"{drift}; reinstall with pip install -c constraints.txt -e \".[dev]\", or, after testing "
                       "the new versions, record them with make constraints")


def test_refresh_writes_what_is_installed(tmp_path, capsys):
    for name in ("pyproject.toml", "environment.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    assert cons.main(["--root", str(tmp_path)]) == 0
    written = (tmp_path / "constraints.txt").read_text(encoding="utf-8")
    pins = cons.read_constraints(written)
    assert pins["numpy"] == metadata.version("numpy") and pins["nbformat"] == metadata.version("nbformat")
    assert "slrnet" not in pins and "torch" not in pins and "pip" not in pins
    assert f"# Python {'.'.join(map(str, sys.version_info[:3]))}" in written
    dists = cons.installed()
    if "torch" in dists:
        assert f"#   torch=={dists['torch'].version}" in written
        if "sympy" in dists:                               # only torch needs it: left to TORCH_SPEC's build
            assert "sympy" not in pins
    if "networkx" in dists and "scikit-image" in dists:   # torch and scikit-image need it: pinned
        assert "networkx" in pins
    env = cons.pin_environment((tmp_path / "environment.yml").read_text(encoding="utf-8"), pins)
    assert (tmp_path / "environment.yml").read_text(encoding="utf-8") == env
    assert cons.main(["--root", str(tmp_path), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_readme_and_makefile_name_the_targets():
    for target in ("book", "constraints"):
        assert re.search(rf"^{target}:", MAKEFILE, re.M), f"the Makefile has no {target} target"
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        assert f"make {target}" in readme, f"README.md never says make {target}"
