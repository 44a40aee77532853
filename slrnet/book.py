"""The rendered book: the executed notebooks of ``make run`` as a static HTML site (``make book``).

    python -m slrnet book                              # outputs/NN_*/NN_*.ipynb -> outputs/book/
    python -m slrnet book --output-root /tmp/out --book-dir /tmp/book

    >>> from slrnet.book import build_book
    >>> build_book("outputs")                          # -> Path("outputs/book/index.html")

``make run`` (``slrnet.suite``) leaves, per notebook, the executed copy ``<output root>/<stem>/<stem>.ipynb`` and the
notebook's ``metrics.json`` beside it. This module renders each executed copy with nbconvert's ``HTMLExporter``
(the ``lab`` template) into ``<book dir>/<stem>.html``: every figure a cell displayed is an embedded
``data:image/png;base64`` image, so the site opens from any folder, without Python and without ``outputs/``
(the template's scripts, MathJax among them, come from a CDN: offline, formulas show as TeX). ``index.html``
lists the notebooks in order: the title (the notebook's first markdown heading) linked to its page, and the run's
table as ``make run`` prints it (status, seconds, the headline metrics of ``slrnet.suite.headline_metrics``).
Status and seconds come from the metadata papermill writes into the executed copy; no notebook is run here.
"""
from __future__ import annotations

import copy
import html
import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

from slrnet.errors import UserError
from slrnet.suite import NOTEBOOK_PATTERN, default_output_root, headline_metrics
from slrnet.utils import atomic_write_bytes

HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
PAGE_TEMPLATE = "lab"
NAV_STYLE = ("font: 14px/1.4 system-ui, sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd; "
             "background: #f7f7f7; position: sticky; top: 0; z-index: 10")


class NoExecutedNotebooks(UserError, FileNotFoundError):
    """The output root holds no executed notebook (``make run`` has not run, or wrote elsewhere)."""


def executed_notebooks(output_root: str | Path) -> list[Path]:
    """``<output_root>/NN_topic/NN_topic.ipynb`` files (the suite's executed copies), in notebook order."""
    root = Path(output_root)
    found = [folder / f"{folder.name}.ipynb" for folder in root.iterdir()
             if folder.is_dir() and NOTEBOOK_PATTERN.match(f"{folder.name}.ipynb")
             and (folder / f"{folder.name}.ipynb").is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: (int(p.name[:2]), p.name))


def notebook_title(nb: dict, default: str) -> str:
    """The text of the first markdown heading (``# 02 · Weakly supervised ...``), else ``default``."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        for line in source.splitlines():
            match = HEADING.match(line)
            if match:
                return match.group(1)
    return default


def _first_error(nb: dict) -> str | None:
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if output.get("output_type") == "error":
                return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    return None


def run_summary(executed: Path, nb: dict) -> dict[str, Any]:
    """What ``make run`` reported for this notebook, read back from its executed copy and ``metrics.json``:
    status (ok / failed / incomplete), seconds, profile, headline metrics and the error (if any)."""
    papermill = nb.get("metadata", {}).get("papermill", {})
    seconds = papermill.get("duration")
    summary = {"status": "ok", "seconds": round(float(seconds), 1) if isinstance(seconds, (int, float)) else None,
               "profile": papermill.get("parameters", {}).get("profile"), "metrics": {}, "error": None}
    metrics_file = executed.parent / "metrics.json"
    metrics, problem = {}, None
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        if not isinstance(metrics, dict):
            metrics, problem = {}, "metrics.json does not hold a JSON object"
    except FileNotFoundError:
        problem = "metrics.json was not written"
    except (OSError, ValueError) as err:
        problem = f"metrics.json is not valid JSON ({err})"
    summary["metrics"] = headline_metrics(metrics)
    error = _first_error(nb)
    if papermill.get("exception") or error:
        summary["status"], summary["error"] = "failed", error or "a cell raised"
    elif papermill.get("start_time") and not papermill.get("end_time"):
        summary["status"], summary["error"] = "incomplete", "the run stopped before the last cell (interrupted?)"
    elif problem:
        summary["status"], summary["error"] = "failed", f"ran but {problem}"
    return summary


def _with_nav(page: str, title: str, links: list[tuple[str, str]]) -> str:
    """The nbconvert page with a bar of links (contents, previous, next) at the top of its body."""
    items = " &middot; ".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for text, href in links)
    nav = ('<style>.slrnet-book-nav a { color: #1a5fb4; }</style>'
           f'<nav class="slrnet-book-nav" style="{NAV_STYLE}">{items}'
           f' &middot; <strong>{html.escape(title)}</strong></nav>')
    body = re.search(r"<body[^>]*>", page)
    return page[:body.end()] + nav + page[body.end():] if body else nav + page


def render_page(executed: Path, nb, title: str, links: list[tuple[str, str]]) -> str:
    """One executed notebook as a self-contained HTML page (figures embedded as data: URIs)."""
    from nbconvert import HTMLExporter

    node = copy.deepcopy(nb)
    node.metadata["title"] = title                 # the page's <title>
    source = node.metadata.get("papermill", {}).get("input_path")
    # markdown images are relative to the notebook as written (papermill ran it in its own folder)
    folder = Path(source).parent if source and Path(source).parent.is_dir() else executed.parent
    exporter = HTMLExporter(template_name=PAGE_TEMPLATE, embed_images=True)
    quiet = logging.getLogger("slrnet.book.nbconvert")     # not "Alternative text is missing" for every figure
    quiet.setLevel(logging.ERROR)
    exporter.log = quiet
    page, _ = exporter.from_notebook_node(node, resources={"metadata": {"name": executed.stem, "path": str(folder)}})
    return _with_nav(page, title, links)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)


INDEX_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #ddd; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #16794a; } .failed, .incomplete, .unreadable { color: #b3261e; font-weight: 600; }
.error { color: #b3261e; font-size: 90%; }
code { font-size: 90%; }
"""


def render_index(rows: list[dict[str, Any]], output_root: Path) -> str:
    """The contents page: one row per notebook, in order, linked to its page."""
    body = []
    for row in rows:
        title = html.escape(row["title"])
        link = f'<a href="{html.escape(row["page"])}">{title}</a>' if row.get("page") else title
        metrics = "<br>".join(f"<code>{html.escape(k)}</code> = {html.escape(_fmt(v))}"
                              for k, v in row["metrics"].items()) or "&ndash;"
        error = f'<div class="error">{html.escape(row["error"])}</div>' if row.get("error") else ""
        seconds = f"{row['seconds']:.1f}" if row.get("seconds") is not None else "&ndash;"
        body.append(f'<tr class="notebook"><td>{link}<div><code>{html.escape(row["notebook"])}</code></div>{error}</td>'
                    f'<td class="{html.escape(row["status"])}">{html.escape(row["status"])}</td>'
                    f'<td class="num">{seconds}</td><td>{html.escape(str(row.get("profile") or "-"))}</td>'
                    f"<td>{metrics}</td></tr>")
    made = time.strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SLRNet notebooks</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{INDEX_STYLE}</style></head>
<body>
<h1>SLRNet notebooks</h1>
<p>The notebooks as <code>make run</code> executed them, with their figures and the run's headline metrics.
Built {made} from <code>{html.escape(str(output_root))}</code> by <code>make book</code>.</p>
<table>
<thead><tr><th>notebook</th><th>status</th><th>seconds</th><th>profile</th><th>metrics</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
</body></html>
"""


def build_book(output_root: str | Path | None = None, book_dir: str | Path | None = None) -> Path:
    """Render every executed notebook under ``output_root`` (default ``outputs/``) into ``book_dir`` (default
    ``<output_root>/book``): one page per notebook and ``index.html``; returns the index's path.

    Raises ``NoExecutedNotebooks`` (one line on the command line) when there is nothing to render.
    """
    import nbformat

    root = Path(output_root) if output_root is not None else default_output_root()
    notebooks = executed_notebooks(root)
    if not notebooks:
        raise NoExecutedNotebooks(f"no executed notebooks in {root} (<output root>/NN_name/NN_name.ipynb): "
                                  f"run make run first")
    book = Path(book_dir) if book_dir is not None else root / "book"
    book.mkdir(parents=True, exist_ok=True)

    rows = []
    for executed in notebooks:
        row = {"notebook": executed.stem, "title": executed.stem, "page": None, "status": "unreadable",
               "seconds": None, "profile": None, "metrics": {}, "error": None}
        try:
            nb = nbformat.reads(executed.read_text(encoding="utf-8"), as_version=4)
        except (OSError, ValueError) as err:          # nbformat's NotJSONError is a ValueError
            row["error"] = f"{executed} could not be read ({err})"
            rows.append(row)
            continue
        row.update(run_summary(executed, nb), title=notebook_title(nb, executed.stem), nb=nb, executed=executed)
        rows.append(row)
    pages = [r for r in rows if "nb" in r]
    for i, row in enumerate(pages):
        links = [("contents", "index.html")]
        if i > 0:
            links.append((f"previous: {pages[i - 1]['notebook']}", f"{pages[i - 1]['notebook']}.html"))
        if i + 1 < len(pages):
            links.append((f"next: {pages[i + 1]['notebook']}", f"{pages[i + 1]['notebook']}.html"))
        page = render_page(row.pop("executed"), row.pop("nb"), row["title"], links)
        row["page"] = f"{row['notebook']}.html"
        atomic_write_bytes(book / row["page"], page.encode("utf-8"))
    written = {r["page"] for r in rows if r["page"]}
    for stale in book.glob("*.html"):            # pages of notebooks no longer in the output root
        if stale.name not in written and NOTEBOOK_PATTERN.match(stale.with_suffix(".ipynb").name):
            stale.unlink()
    index = atomic_write_bytes(book / "index.html", render_index(rows, root).encode("utf-8"))
    return index


def add_cli_arguments(parser) -> None:
    parser.add_argument("--output-root", default=None,
                        help="where make run left <notebook>/<notebook>.ipynb and metrics.json (default outputs/)")
    parser.add_argument("--book-dir", default=None, help="where the site goes (default <output root>/book)")


def cli_run(args) -> int:
    index = build_book(args.output_root, args.book_dir)
    print(f"book: {index}  (open it in a browser; {len(list(index.parent.glob('*.html'))) - 1} notebook pages)")
    return 0
