"""Packaging stays consistent: pyproject vs environment.yml, CI vs README, the Makefile's torch logic,
and the console entry point (``python -m slrnet`` / ``slrnet``)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from slrnet import cli

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _name(requirement: str) -> str:
    """PEP 503-normalised distribution name of a requirement string (specifiers, extras dropped)."""
    match = NAME.match(requirement)
    assert match, f"cannot read a package name from {requirement!r}"
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _readme_commands() -> list[str]:
    """Shell lines of the README's first fenced code block (the two commands it opens with)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```[a-z]*\n(.*?)```", text, re.S)
    assert block, "README.md has no fenced code block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


# ----------------------------------------------------------------------------- dependency drift

def test_pyproject_and_environment_list_the_same_packages():
    project = _pyproject()["project"]
    declared = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    pip = {_name(r) for r in pip_sections[0] if not r.strip().startswith("-")}  # "-e ." is the package itself
    assert any(r.strip() == "-e ." for r in pip_sections[0]), "environment.yml should install the package (-e .)"
    assert not declared - pip, f"in pyproject.toml but not environment.yml: {sorted(declared - pip)}"
    assert not pip - declared, f"in environment.yml but not pyproject.toml: {sorted(pip - declared)}"


def test_requirement_names_are_normalised():
    assert _name("torch>=2.1") == "torch"
    assert _name("PyYAML ; python_version>'3'") == "pyyaml"
    assert _name("pydensecrf2[extra]==1.1") == "pydensecrf2"
    assert _name("Jupyter_Lab") == "jupyter-lab"


# ----------------------------------------------------------------------------- CI == README

def test_ci_runs_the_readme_test_command_then_the_browser_test():
    commands = _readme_commands()
    assert commands[:2] == ["make run", "make test"], f"README should open with make run / make test: {commands}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    steps = [line.strip() for line in ci if line.strip() and not line.lstrip().startswith("#")]
    steps = [s for s in steps if not s.startswith(("set ", "cd "))]  # shell preamble
    assert steps == ["make test", "make test-browser"], \
        f".ci/run should run the README's test command, then the browser test; runs {steps}"
    assert "make test-browser" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert os.access(ROOT / ".ci" / "run", os.X_OK), ".ci/run must be executable"


# ----------------------------------------------------------------------------- Makefile torch logic

FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
if [ "$1" = "-c" ]; then
    [ "$FAKE_HAS_TORCH" = 1 ] || exit 1
    echo 2.13.0-fake
fi
exit 0
"""


def _make_install(tmp_path: Path, has_torch: bool, torch_spec: str | None = None) -> list[str]:
    """Run ``make install`` with a fake venv python that logs its arguments instead of installing."""
    venv = tmp_path / f"venv-{has_torch}-{bool(torch_spec)}"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / f"{venv.name}.log"
    env = {**os.environ, "FAKE_LOG": str(log), "FAKE_HAS_TORCH": "1" if has_torch else "0"}
    env.pop("TORCH_SPEC", None)
    cmd = ["make", "-s", "-C", str(ROOT), "install", f"VENV={venv}"]
    if torch_spec is not None:
        cmd.append(f"TORCH_SPEC={torch_spec}")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (venv / ".slrnet-installed").exists()
    return log.read_text().splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_installs_cpu_torch_only_when_none_is_importable(tmp_path):
    without = _make_install(tmp_path, has_torch=False)
    assert "-m pip install -q torch==2.13.0" in without
    assert "-m pip install -q -c constraints.txt -e .[dev]" in without
    with_torch = _make_install(tmp_path, has_torch=True)
    assert not [line for line in with_torch if "install -q torch" in line]
    assert "-m pip install -q -c constraints.txt -e .[dev]" in with_torch


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_honours_torch_spec(tmp_path):
    spec = "torch --index-url https://download.pytorch.org/whl/cu124"
    log = _make_install(tmp_path, has_torch=True, torch_spec=spec)
    assert f"-m pip install -q {spec}" in log
    assert "-m pip install -q torch==2.13.0" not in log


# ----------------------------------------------------------------------------- console entry point

def test_console_script_points_at_cli_main():
    assert _pyproject()["project"]["scripts"]["slrnet"] == "slrnet.cli:main"
    assert set(cli.COMMANDS) == {"train", "infer", "predict", "eval", "export", "suite", "book", "convert",
                                 "pretrain"}


def test_top_level_help_imports_no_command_module():
    code = ("import sys; from slrnet.cli import main\n"
            "try: main(['--help'])\n"
            "except SystemExit as e: assert e.code == 0\n"
            "loaded = [m for m in ('slrnet.train', 'slrnet.suite', 'papermill') if m in sys.modules]\n"
            "print('LOADED', loaded)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout
    for name in cli.COMMANDS:
        assert name in proc.stdout


def test_python_dash_m_shows_a_subcommand_s_own_flags():
    proc = subprocess.run([sys.executable, "-m", "slrnet", "suite", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m slrnet suite")
    for flag in ("--profile", "--only", "--output-root", "--timeout", "--param"):
        assert flag in proc.stdout


def test_a_broken_command_module_does_not_break_the_others(monkeypatch, capsys, tmp_path):
    broken = tmp_path / "slrnet_broken_cmd.py"
    broken.write_text("raise RuntimeError('this module is broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "broken", ("slrnet_broken_cmd", "a command whose module fails to import"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0 and "broken" in capsys.readouterr().out
    assert cli.main(["broken", "--help"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the 'broken' command is unavailable") and "broken on purpose" in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["suite", "--help"])
    assert exit_info.value.code == 0 and "--profile" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="on purpose"):
        cli.main(["--debug", "broken"])


def test_user_errors_print_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    module = tmp_path / "slrnet_failing_cmd.py"
    module.write_text(
        "def add_cli_arguments(parser):\n"
        "    parser.add_argument('--kind', default='value')\n"
        "def cli_run(args):\n"
        "    errors = {'value': ValueError('bad value for --kind\\nexpected x'),\n"
        "              'key': KeyError('unknown config key train.lrr (did you mean train.lr?)'),\n"
        "              'file': FileNotFoundError('config /no/such.yaml does not exist'),\n"
        "              'ok': None}\n"
        "    if errors[args.kind] is None:\n"
        "        return 0\n"
        "    raise errors[args.kind]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "failing", ("slrnet_failing_cmd", "raises what --kind says"))
    expected = {"value": "error: bad value for --kind expected x",
                "key": "error: unknown config key train.lrr (did you mean train.lr?)",
                "file": "error: config /no/such.yaml does not exist"}
    for kind, message in expected.items():
        assert cli.main(["failing", "--kind", kind]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    assert cli.main(["failing", "--kind", "ok"]) == 0
    with pytest.raises(KeyError):
        cli.main(["failing", "--kind", "key", "--debug"])
