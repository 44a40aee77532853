"""The notebook suite runner: execute ``notebooks/NN_*.ipynb`` in order with papermill.

    python -m slrnet suite                          # quick profile, every notebook, into outputs/
    python -m slrnet suite --profile smoke --only 00,02 --output-root /tmp/out
    python -m slrnet suite --only 02 --profile full -p seed 3

    >>> from slrnet.suite import run_suite
    >>> results = run_suite(profile="smoke", only=["00"])
    >>> results[0]["status"], results[0]["metrics"]
    ('ok', {...})

Each notebook runs in a fresh ``python3`` kernel whose working directory is the notebooks folder
(so relative paths inside notebooks resolve the same way as in JupyterLab). The runner injects
``profile`` and ``output_dir`` (absolute ``<output root>/<notebook stem>/``), ``interactive=False`` and the
user's parameter overrides, but only those the notebook declares in its cell tagged ``parameters``. What a
profile *means* (epochs, image counts, ...) is written once, in ``configs/profiles.yaml`` (``slrnet.profiles``).
Every notebook writes its figures (PNG) and a ``metrics.json`` into its output_dir; the runner removes the
figures an earlier run left there first, adds the executed copy ``<stem>.ipynb`` and reports a few headline metrics
from ``metrics.json``.

Profiles: ``smoke`` (the tests: seconds per notebook), ``quick`` (``make run``: minutes on a CPU)
and ``full`` (a real run: hours, meant for a GPU).
"""
from __future__ import annotations

import ast
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Iterable

from slrnet.profiles import PROFILES
from slrnet.profiles import cell_timeout as cell_timeout_of
from slrnet.utils import progress_disabled, repo_root

# The profiles and their per-cell timeouts are those of configs/profiles.yaml (slrnet.profiles). Headless runs
# never build widgets, hence interactive=False, injected where a notebook declares it.
HEADLESS_PARAMETERS: dict[str, Any] = {"interactive": False}
NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_[A-Za-z0-9_]+\.ipynb$")
KERNEL_NAME = "python3"
# Headline metrics: the first matching rule ranks a key (lower is better); run times and counts come
# last, nested entries ("group.key", one level deep) after top-level ones of the same rank.
HEADLINE_RULES = (r"(^|\.)val_miou$", r"(^|\.|_)miou$", r"miou", r"iou", r"acc|precision|recall|f1",
                  r"error|loss", r".")
DEMOTED_KEYS = r"seconds|time|duration|(^|\.)num_|count"
MAX_HEADLINES = 3


def default_notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def default_output_root() -> Path:
    return repo_root() / "outputs"


def discover_notebooks(notebooks_dir: str | Path | None = None) -> list[Path]:
    """``NN_topic.ipynb`` files of ``notebooks_dir`` sorted by their number (00, 01, ...)."""
    folder = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"notebooks folder {str(folder)!r} does not exist")
    found = [p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: (int(NOTEBOOK_PATTERN.match(p.name).group(1)), p.name))


def select_notebooks(notebooks: list[Path], only: Iterable[str] | str | None) -> list[Path]:
    """Keep the notebooks named by ``only``: numbers ("00", "2") or stems ("02_weak_training")."""
    if only is None:
        return notebooks
    wanted = [s.strip() for s in (only.split(",") if isinstance(only, str) else only) if str(s).strip()]
    chosen = []
    for key in wanted:
        key = str(key).removesuffix(".ipynb")
        hits = [p for p in notebooks
                if p.stem == key or (key.isdigit() and int(key) == int(p.name[:2]))]
        if not hits:
            available = ", ".join(p.stem for p in notebooks) or "none"
            raise ValueError(f"--only {key!r} matches no notebook (available: {available})")
        chosen += [p for p in hits if p not in chosen]
    return sorted(chosen, key=notebooks.index)


def declared_parameters(notebook_path: str | Path) -> dict[str, Any]:
    """Names and literal defaults assigned in the notebook's cell tagged ``parameters`` ({} if none)."""
    nb = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            try:
                tree = ast.parse(source)
            except SyntaxError as err:
                raise ValueError(f"{notebook_path}: the parameters cell is not valid Python ({err})") from None
            params = {}
            for stmt in tree.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
                value = getattr(stmt, "value", None)
                for target in targets:
                    if isinstance(target, ast.Name):
                        try:
                            params[target.id] = ast.literal_eval(value) if value is not None else None
                        except ValueError:
                            params[target.id] = ast.unparse(value)  # not a literal: keep its text
            return params
    return {}


def headline_metrics(metrics: dict, limit: int = MAX_HEADLINES) -> dict[str, float]:
    """A few numeric entries of a metrics dict, ``val_miou``/``*_miou`` first (see HEADLINE_RULES)."""
    def is_number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    candidates = [(k, v, 0) for k, v in metrics.items() if is_number(v)]
    candidates += [(f"{k}.{sub}", v, 1) for k, group in metrics.items() if isinstance(group, dict)
                   for sub, v in group.items() if is_number(v)]

    def rank(item):
        key, _, depth = item[0].lower(), item[1], item[2]
        rule = next(i for i, pattern in enumerate(HEADLINE_RULES) if re.search(pattern, key))
        return rule, bool(re.search(DEMOTED_KEYS, key)), depth

    return {k: v for k, v, _ in sorted(candidates, key=rank)[:limit]}  # stable: ties keep file order


def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "<empty cell>")


def _source_cell_index(executed_nb_path: Path, executed_index: int) -> int:
    """Map a cell index of the executed copy back to the source notebook (papermill inserts a cell)."""
    try:
        cells = json.loads(executed_nb_path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return executed_index
    # The saved copy also holds the error banners papermill adds *after* computing the index.
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in cells]
    tags = [t for t in tags if "papermill-error-cell-tag" not in t]
    return executed_index - sum("injected-parameters" in t for t in tags[:executed_index])


def _describe_failure(err: Exception, notebook: Path, executed: Path) -> tuple[str, dict | None]:
    """A one-paragraph message naming the notebook, the failing cell and the exception."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        index = _source_cell_index(executed, err.cell_index)
        cell = {"index": index, "first_line": _first_line(err.source), "ename": err.ename, "evalue": err.evalue}
        return (f"{notebook.name} failed in cell {index} ({cell['first_line']!r}): "
                f"{err.ename}: {err.evalue}  [traceback in {executed}]"), cell
    # Timeouts and kernel deaths are raised by nbclient itself; name the last cell that started.
    cell = None
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
        started = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
        if started:
            index = _source_cell_index(executed, started[-1])
            cell = {"index": index, "first_line": _first_line("".join(cells[started[-1]]["source"])),
                    "ename": type(err).__name__, "evalue": str(err).splitlines()[0] if str(err) else ""}
    except (OSError, ValueError, KeyError):
        pass
    where = f" in cell {cell['index']} ({cell['first_line']!r})" if cell else ""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{notebook.name} failed{where}: {type(err).__name__}: {first}", cell


def _read_metrics(path: Path, not_before: float) -> tuple[dict, str | None]:
    """Metrics written by *this* run (a stale file from an earlier run is not reported)."""
    if not path.exists() or path.stat().st_mtime < not_before:
        return {}, f"{path} was not written"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        return {}, f"{path} is not valid JSON ({err})"
    return (metrics, None) if isinstance(metrics, dict) else ({}, f"{path} does not hold a JSON object")


def run_notebook(notebook: str | Path, output_dir: str | Path, parameters: dict[str, Any] | None = None,
                 timeout: float | None = None, log_output: bool = False) -> dict[str, Any]:
    """Execute one notebook into ``output_dir`` (absolute), injecting only declared parameters."""
    import papermill as pm

    notebook, output_dir = Path(notebook).resolve(), Path(output_dir).resolve()
    declared = declared_parameters(notebook)
    if "output_dir" not in declared:
        raise ValueError(f"{notebook.name}: its cell tagged 'parameters' must assign output_dir "
                         f"(found: {sorted(declared) or 'no parameters cell'})")
    injected = {k: v for k, v in (parameters or {}).items() if k in declared}
    injected["output_dir"] = str(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.glob("*.png"):            # figures of an earlier run must not pass for this run's
        stale.unlink()
    executed = output_dir / f"{notebook.stem}.ipynb"
    result = {"notebook": notebook.stem, "path": str(notebook), "output_dir": str(output_dir),
              "executed": str(executed), "parameters": injected, "status": "ok", "seconds": 0.0,
              "metrics": {}, "error": None, "failed_cell": None}
    start = time.time()
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=injected, kernel_name=KERNEL_NAME,
                            cwd=str(notebook.parent), execution_timeout=timeout or None,
                            progress_bar=not progress_disabled(), log_output=log_output)
    except Exception as err:  # noqa: BLE001 -- any failure of one notebook is reported, not raised
        result["status"] = "failed"
        result["error"], result["failed_cell"] = _describe_failure(err, notebook, executed)
    result["seconds"] = round(time.time() - start, 1)
    metrics, problem = _read_metrics(output_dir / "metrics.json", not_before=start - 1.0)
    result["metrics"] = headline_metrics(metrics)
    if problem and result["status"] == "ok":
        result["status"], result["error"] = "failed", f"{notebook.name} ran but {problem}"
    return result


def run_suite(profile: str = "quick", only: Iterable[str] | str | None = None,
              output_root: str | Path | None = None, notebooks_dir: str | Path | None = None,
              timeout: float | None = None, parameters: dict[str, Any] | None = None,
              fail_fast: bool = False, log_output: bool = False, echo: bool = False) -> list[dict[str, Any]]:
    """Run the selected notebooks in numeric order; returns one result dict per notebook.

    ``timeout`` is per cell in seconds (default: the profile's; 0 disables it). ``parameters``
    override the profile's; a key no selected notebook declares is an error. A failed notebook
    does not stop the others unless ``fail_fast``. ``echo`` prints one line per notebook.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is unknown; expected one of {sorted(PROFILES)}")
    notebooks = discover_notebooks(notebooks_dir)
    if not notebooks:
        raise FileNotFoundError(f"no NN_topic.ipynb notebooks in {notebooks_dir or default_notebooks_dir()}")
    notebooks = select_notebooks(notebooks, only)
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    for nb, names in declared.items():  # check every notebook before running any
        if "output_dir" not in names:
            raise ValueError(f"{nb}: its cell tagged 'parameters' must assign output_dir "
                             f"(found: {sorted(names) or 'no parameters cell'})")
    for key in parameters or {}:
        if key in ("profile", "output_dir"):
            raise ValueError(f"parameter {key!r} is set by the runner; use --profile / --output-root instead")
        if not any(key in d for d in declared.values()):
            raise ValueError(f"parameter {key!r} is not declared by any selected notebook "
                             f"(declared: {sorted(set().union(*declared.values()))})")
        for nb, names in declared.items():
            if key in names:
                check_parameter_type(key, parameters[key], names[key], nb.name)
    root = Path(output_root).resolve() if output_root is not None else default_output_root()
    values = {**HEADLESS_PARAMETERS, **(parameters or {}), "profile": profile}
    cell_timeout = cell_timeout_of(profile) if timeout is None else timeout

    results = []
    for nb in notebooks:
        if echo:
            print(f"[suite] {nb.name} (profile {profile}) -> {root / nb.stem}", flush=True)
        result = run_notebook(nb, root / nb.stem, values, timeout=cell_timeout, log_output=log_output)
        results.append(result)
        if echo:
            print(f"[suite] {nb.name}: {result['status']} in {result['seconds']:.1f}s"
                  + (f"\n  {result['error']}" if result["error"] else ""), flush=True)
        if fail_fast and result["status"] != "ok":
            break
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    """Plain-text summary: notebook, status, seconds, headline metrics."""
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) and math.isfinite(v) else str(v)

    rows = [("notebook", "status", "seconds", "metrics")]
    for r in results:
        metrics = "  ".join(f"{k}={fmt(v)}" for k, v in r["metrics"].items()) or "-"
        rows.append((r["notebook"], r["status"], f"{r['seconds']:.1f}", metrics))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip() for a, b, c, d in rows)


def check_parameter_type(key: str, value: Any, default: Any, notebook: str) -> None:
    """A value injected into a notebook must have its declared default's type (an int where the default is an int, a
    finite number where it is a float, ...); a parameter declared None takes anything. Checked before any run."""
    if default is None:
        return
    expected = type(default)
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ValueError(f"parameter {key!r}: {notebook} expects {expected.__name__} values like its default "
                         f"{default!r}, got {value!r}")


def _parse_value(text: str) -> Any:
    """``-p key value``: Python/YAML-like literals (3, 0.5, true, None, [1, 2]); anything else is a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def add_cli_arguments(parser) -> None:
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                        help="smoke (tests, seconds), quick (make run, minutes), full (a real run); default quick")
    parser.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 00,02")
    parser.add_argument("--output-root", default=None, help="where <notebook>/ output folders go (default outputs/)")
    parser.add_argument("--notebooks-dir", default=None, help="folder of NN_topic.ipynb files (default notebooks/)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="per-cell timeout in seconds (default: the profile's; 0 = none)")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="override a notebook parameter (injected where the notebook declares it)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failing notebook")
    parser.add_argument("--log-output", action="store_true", help="stream cell outputs to the terminal")
    parser.add_argument("--list", action="store_true", help="list the notebooks and their parameters, run nothing")


def cli_run(args) -> int:
    if args.list:
        for nb in select_notebooks(discover_notebooks(args.notebooks_dir), args.only):
            print(f"{nb.name}: {declared_parameters(nb)}")
        return 0
    overrides = {key: _parse_value(value) for key, value in args.param}
    results = run_suite(profile=args.profile, only=args.only, output_root=args.output_root,
                        notebooks_dir=args.notebooks_dir, timeout=args.timeout, parameters=overrides,
                        fail_fast=args.fail_fast, log_output=args.log_output, echo=True)
    print()
    print(format_table(results))
    failed = [r for r in results if r["status"] != "ok"]
    for r in failed:
        print(f"FAILED {r['error']}")
    return 1 if failed else 0
