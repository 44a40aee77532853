"""Tiny executed notebooks laid out as ``make run`` leaves them (``<root>/<stem>/<stem>.ipynb`` + ``metrics.json``),
for the book tests (tests/test_book.py, tests/browser/test_book_site.py): no kernel, no papermill run."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output


def tiny_png(width: int = 48, height: int = 32, color=(200, 40, 40)) -> str:
    """A small PNG, base64-encoded as notebooks store image/png outputs."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_executed(root: Path, stem: str, cells: list, metrics: dict | None, seconds: float = 1.5,
                   failed: bool = False, profile: str = "smoke") -> Path:
    """``root/stem/stem.ipynb`` with papermill's run metadata, and ``metrics.json`` unless ``metrics`` is None."""
    folder = root / stem
    folder.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["papermill"] = {"start_time": "2026-01-01T10:00:00.000000", "end_time": "2026-01-01T10:00:01.500000",
                                "duration": seconds, "exception": failed, "input_path": str(folder / "missing.ipynb"),
                                "parameters": {"profile": profile, "output_dir": str(folder)}}
    nbformat.validate(nb)
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return path


def figure_cell(png: str, count: int = 1):
    return new_code_cell("show(figure)", execution_count=count, outputs=[
        new_output("display_data", data={"image/png": png, "text/plain": "<Figure size 480x320>"})])


def write_two_notebooks(root: Path) -> dict[str, str]:
    """00 (a figure, metrics) and 01 (its heading after an intro cell, no figure), written in reverse order;
    returns the PNG of 00's figure."""
    png = tiny_png()
    write_executed(root, "01_second_topic", [
        new_markdown_cell("An introduction without a heading."),
        new_markdown_cell("Text first.\n\n## 01 · The second notebook\n\nMore text with $x^2$."),
        new_code_cell("print('hello')", execution_count=1,
                      outputs=[new_output("stream", name="stdout", text="hello\n")]),
    ], metrics={"loss": 0.25, "num_images": 4}, seconds=2.25)
    write_executed(root, "00_first_topic", [
        new_markdown_cell("# 00 · The first notebook\n\nA figure follows."),
        figure_cell(png),
    ], metrics={"seconds": 3.0, "val_miou": 0.51234, "per_class": {"miou": 0.4}, "pixel_acc": 0.9}, seconds=1.5)
    return {"png": png}
