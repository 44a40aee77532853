"""Notebook conventions, the papermill runner (slrnet.suite) and a smoke run of every notebook.

* conventions: every committed ``notebooks/*.ipynb`` is valid nbformat 4, has no outputs or execution
  counts, kernelspec ``python3``, a ``NN_topic.ipynb`` name and exactly one cell tagged ``parameters``
  (the first code cell) that holds only literal assignments;
* the runner on tiny notebooks written to tmp_path: injection, cwd, order, headline metrics, a failing
  cell named in the error, a cell timeout;
* ``-m notebook``: each notebook runs alone with the ``smoke`` profile and leaves metrics.json + PNGs.
"""
from __future__ import annotations

import ast
import json
import math
import re
import time
from pathlib import Path

import nbformat
import pytest

from slrnet import suite
from slrnet.cli import main

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
NAME_PATTERN = re.compile(r"^\d{2}_[a-z0-9]+(_[a-z0-9]+)*\.ipynb$")
REQUIRED_PARAMETERS = ("output_dir", "profile", "seed", "interactive")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


# ----------------------------------------------------------------------------- conventions

@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_conventions(path: Path):
    assert NAME_PATTERN.match(path.name), f"{path.name}: expected a name like 02_weak_training.ipynb"
    raw = json.loads(path.read_text(encoding="utf-8"))  # valid JSON first, for a clear message
    nb = nbformat.reads(json.dumps(raw), as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4, f"{path.name}: nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"

    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i} has outputs committed"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"

    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in _tags(c)]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters' (cells {tagged}), expected 1"
    cell = nb.cells[tagged[0]]
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert cell.cell_type == "code" and tagged[0] == first_code, f"{path.name}: parameters must be the first code cell"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("#"), \
        f"{path.name}: the first cell should be a markdown title"

    values = {}
    for stmt in ast.parse(cell.source).body:
        assert isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None, \
            f"{path.name}: parameters cell line {stmt.lineno} is not an assignment"
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        assert all(isinstance(t, ast.Name) for t in targets), f"{path.name}: line {stmt.lineno} assigns to a non-name"
        try:
            value = ast.literal_eval(stmt.value)
        except ValueError:
            pytest.fail(f"{path.name}: parameters cell line {stmt.lineno} is not a literal: {ast.unparse(stmt.value)}")
        values.update({t.id: value for t in targets})
    missing = [name for name in REQUIRED_PARAMETERS if name not in values]
    assert not missing, f"{path.name}: parameters cell lacks {missing}"
    assert values["interactive"] is False, f"{path.name}: interactive must default to False"
    assert values["profile"] in suite.PROFILES, f"{path.name}: profile default {values['profile']!r}"
    assert suite.declared_parameters(path) == values  # the runner sees what the notebook declares


def test_notebook_numbers_are_unique():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"duplicate notebook numbers: {numbers}"
    assert [p.name for p in suite.discover_notebooks(NOTEBOOKS_DIR)] == [p.name for p in NOTEBOOKS]


# ----------------------------------------------------------------------------- runner, on tiny notebooks

PARAMS = 'profile = "quick"\noutput_dir = "../outputs/{stem}"\nseed = 0\ninteractive = True\n'


def _write_notebook(path: Path, extra_params: str, *code_cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMS.format(stem=path.stem) + extra_params)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in code_cells]
    nbformat.write(nb, path)
    return path


WRITE_METRICS = """import json, os, pathlib
out = pathlib.Path(output_dir)
(out / "cwd.txt").write_text(os.getcwd())
with open(out / "metrics.json", "w") as f:
    json.dump({"loss": 0.5, "steps": 3, "train_miou": 0.75, "val_miou": 0.25 * scale,
               "profile": profile, "interactive": interactive}, f)"""


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebooks")
    _write_notebook(folder / "00_ok.ipynb", "scale = 1\n", WRITE_METRICS)
    _write_notebook(folder / "01_fail.ipynb", "", "x = 1", 'raise ValueError("boom from the test")\ny = 2')
    _write_notebook(folder / "10_after.ipynb", "", WRITE_METRICS.replace("* scale", ""))
    _write_notebook(folder / "notes.ipynb", "", "raise RuntimeError('not part of the suite')")
    root = tmp_path_factory.mktemp("outputs")
    results = suite.run_suite(profile="smoke", output_root=root, notebooks_dir=folder, parameters={"scale": 2})
    return folder, root, results


def test_runner_runs_in_numeric_order_and_continues_after_a_failure(tiny_suite):
    folder, root, results = tiny_suite
    assert [r["notebook"] for r in results] == ["00_ok", "01_fail", "10_after"]
    assert [r["status"] for r in results] == ["ok", "failed", "ok"]
    for r in results:
        assert Path(r["executed"]) == root / r["notebook"] / f"{r['notebook']}.ipynb"
        assert Path(r["executed"]).exists() and r["seconds"] > 0


def test_runner_injects_only_declared_parameters(tiny_suite):
    folder, root, results = tiny_suite
    ok, _, after = results
    assert ok["parameters"] == {"interactive": False, "scale": 2, "profile": "smoke", "output_dir": str(root / "00_ok")}
    assert "scale" not in after["parameters"]  # 10_after does not declare it
    assert Path(ok["output_dir"]).is_absolute()
    assert (root / "00_ok" / "cwd.txt").read_text() == str(folder.resolve())
    written = json.loads((root / "00_ok" / "metrics.json").read_text())
    assert written["val_miou"] == 0.5 and written["profile"] == "smoke" and written["interactive"] is False
    executed = nbformat.read(ok["executed"], as_version=4)
    assert any("injected-parameters" in _tags(c) for c in executed.cells)


def test_runner_reports_headline_metrics(tiny_suite):
    ok = tiny_suite[2][0]
    assert list(ok["metrics"]) == ["val_miou", "train_miou", "loss"]
    table = suite.format_table(tiny_suite[2])
    assert "val_miou=0.5" in table and "01_fail" in table and "failed" in table


def test_runner_names_the_failing_cell(tiny_suite):
    failed = tiny_suite[2][1]
    assert failed["failed_cell"]["index"] == 3  # title, parameters, "x = 1", the raising cell
    assert failed["failed_cell"]["first_line"] == 'raise ValueError("boom from the test")'
    for part in ("01_fail.ipynb", "cell 3", "raise ValueError", "ValueError: boom from the test"):
        assert part in failed["error"]


def test_cli_suite_fail_fast_exit_status_and_table(tiny_suite, tmp_path, capsys):
    folder = tiny_suite[0]
    code = main(["suite", "--notebooks-dir", str(folder), "--output-root", str(tmp_path), "--profile", "smoke",
                 "--only", "01,10", "--fail-fast"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED 01_fail.ipynb failed in cell 3" in out
    assert "10_after" not in out.split("notebook", 1)[1]  # fail-fast: not run, not in the table
    assert not (tmp_path / "10_after").exists()


def test_runner_cell_timeout_names_the_cell(tmp_path):
    nb = _write_notebook(tmp_path / "00_slow.ipynb", "", "import time\ntime.sleep(60)")
    start = time.time()
    [result] = suite.run_suite(profile="smoke", output_root=tmp_path / "out", notebooks_dir=tmp_path, timeout=2)
    assert time.time() - start < 45
    assert result["status"] == "failed" and nb.name in result["error"]
    assert result["failed_cell"]["index"] == 2 and "import time" in result["error"]


def test_runner_rejects_bad_requests_before_running(tmp_path):
    _write_notebook(tmp_path / "00_a.ipynb", "", "pass")
    with pytest.raises(ValueError, match="profile"):
        suite.run_suite(profile="fast", notebooks_dir=tmp_path)
    with pytest.raises(ValueError, match="matches no notebook.*00_a"):
        suite.run_suite(profile="smoke", only="03", notebooks_dir=tmp_path)
    with pytest.raises(ValueError, match="'epochs' is not declared"):
        suite.run_suite(profile="smoke", notebooks_dir=tmp_path, parameters={"epochs": 3})
    with pytest.raises(ValueError, match="--output-root"):
        suite.run_suite(profile="smoke", notebooks_dir=tmp_path, parameters={"output_dir": "/tmp"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        suite.run_suite(profile="smoke", notebooks_dir=tmp_path / "missing")
    bare = nbformat.v4.new_notebook()
    bare.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(bare, tmp_path / "01_bare.ipynb")
    with pytest.raises(ValueError, match="01_bare.ipynb.*must assign output_dir"):
        suite.run_suite(profile="smoke", notebooks_dir=tmp_path, output_root=tmp_path / "never")
    assert not (tmp_path / "never").exists()  # nothing ran


def test_cli_user_errors_exit_2(tmp_path, capsys):
    _write_notebook(tmp_path / "00_a.ipynb", "", "pass")
    assert main(["suite", "--notebooks-dir", str(tmp_path), "--only", "07"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --only '07' matches no notebook") and err.count("\n") == 1
    with pytest.raises(ValueError):
        main(["--debug", "suite", "--notebooks-dir", str(tmp_path), "--only", "07"])
    with pytest.raises(ValueError):
        main(["suite", "--notebooks-dir", str(tmp_path), "--only", "07", "--debug"])
    assert main(["suite", "--notebooks-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["suite", "--notebooks-dir", str(tmp_path), "--list"]) == 0
    assert "00_a.ipynb: {'profile': 'quick', 'output_dir': '../outputs/00_a', 'seed': 0" in capsys.readouterr().out


def test_selection_headlines_and_parameter_parsing(tmp_path):
    paths = [tmp_path / n for n in ("00_a.ipynb", "01_b.ipynb", "02_c.ipynb")]
    assert suite.select_notebooks(paths, "2,00") == [paths[0], paths[2]]
    assert suite.select_notebooks(paths, ["01_b"]) == [paths[1]]
    assert suite.select_notebooks(paths, None) == paths
    metrics = {"loss": 1.0, "flag": True, "name": "x", "nested": {"val_miou": 1}, "seg_miou": 0.3,
               "pixel_acc": 0.9, "val_miou": 0.4, "nan_metric": float("nan")}
    assert list(suite.headline_metrics(metrics)) == ["val_miou", "nested.val_miou", "seg_miou"]
    timings = {"seconds": 3.0, "num_images": 40, "stats": {"mean_area": 0.2}, "cosine": 0.9}
    assert list(suite.headline_metrics(timings, limit=2)) == ["cosine", "stats.mean_area"]
    assert [suite._parse_value(v) for v in ("3", "0.5", "true", "None", "[1, 2]", "cpu")] == \
        [3, 0.5, True, None, [1, 2], "cpu"]


def test_stale_metrics_are_not_reported(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"val_miou": 0.5}')
    assert suite._read_metrics(path, not_before=time.time() - 60) == ({"val_miou": 0.5}, None)
    metrics, problem = suite._read_metrics(path, not_before=time.time() + 60)
    assert metrics == {} and "was not written" in problem


# ----------------------------------------------------------------------------- every notebook, smoke profile

def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


SUITE_NOTEBOOKS = [p for p in NOTEBOOKS if suite.NOTEBOOK_PATTERN.match(p.name)]


@pytest.mark.notebook
@pytest.mark.parametrize("path", SUITE_NOTEBOOKS, ids=[p.stem for p in SUITE_NOTEBOOKS])
def test_notebook_runs_with_smoke_profile(path: Path, output_root: Path):
    [result] = suite.run_suite(profile="smoke", only=[path.stem], output_root=output_root, notebooks_dir=NOTEBOOKS_DIR)
    assert result["status"] == "ok", result["error"]
    out = output_root / path.stem
    assert (out / f"{path.stem}.ipynb").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    numbers = list(_numbers(metrics))
    assert numbers, f"{path.name}: metrics.json holds no numbers"
    assert all(math.isfinite(v) for v in numbers), f"{path.name}: non-finite metric in {metrics}"
    pngs = sorted(out.rglob("*.png"))
    assert pngs, f"{path.name}: no PNG figure in {out}"
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE, f"{png} is not a PNG"


@pytest.mark.notebook
@pytest.mark.slow
def test_notebooks_run_on_the_photos_dataset(output_root: Path):
    """`dataset = "photos"`: 00 tours it, 02 trains on it and publishes its model, 05 evaluates that model."""
    results = suite.run_suite(profile="smoke", only=["00_dataset_tour", "02_train_weakly_supervised", "05_evaluate"],
                              output_root=output_root, notebooks_dir=NOTEBOOKS_DIR, parameters={"dataset": "photos"})
    assert [r["status"] for r in results] == ["ok"] * 3, [r["error"] for r in results]
    tour = json.loads((output_root / "00_dataset_tour" / "metrics.json").read_text())
    assert tour["num_classes"] == 11 and Path(tour["root"]).name == "photos_smoke", tour
    assert (output_root / "models" / "weakly_supervised_photos.pth").is_file()
    assert not (output_root / "models" / "weakly_supervised.pth").exists()
    evaluation = json.loads((output_root / "05_evaluate" / "metrics.json").read_text())
    assert evaluation["model_source"] == "checkpoint", evaluation


def test_runner_removes_an_earlier_runs_figures_first(tmp_path):
    """A figure the notebook no longer draws must not be shown as this run's (e.g. after a profile change)."""
    nb = _write_notebook(tmp_path / "00_draw.ipynb", "",
                         'import pathlib\n(pathlib.Path(output_dir) / "new.png").write_bytes(b"x")\n' + WRITE_METRICS
                         .replace("* scale", ""))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_bytes(b"stale")
    (out / "data.npy").write_bytes(b"kept")
    assert suite.run_notebook(nb, out, {"profile": "smoke"})["status"] == "ok"
    assert sorted(p.name for p in out.glob("*.png")) == ["new.png"] and (out / "data.npy").read_bytes() == b"kept"
