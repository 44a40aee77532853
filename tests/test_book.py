"""The rendered book (slrnet.book, make book): executed notebooks -> a static HTML site with embedded figures and
an index carrying the run's table. Built from tiny executed notebooks written here (no kernel, no papermill run)."""
from __future__ import annotations

import re
import shutil

import pytest
from book_notebooks import figure_cell, tiny_png, write_executed, write_two_notebooks
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from slrnet import cli
from slrnet.book import NoExecutedNotebooks, build_book, executed_notebooks
from slrnet.suite import headline_metrics


@pytest.fixture
def outputs(tmp_path):
    root = tmp_path / "outputs"
    made = write_two_notebooks(root)
    (root / "cvlr_ladder_quick" / "runs").mkdir(parents=True)         # other folders of outputs/ are not notebooks
    return root, made


def test_index_lists_the_notebooks_in_order_with_links_and_the_run_table(outputs):
    root, _ = outputs
    index = build_book(root)
    assert index == root / "book" / "index.html"
    text = index.read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', text)
    assert links == [("00_first_topic.html", "00 · The first notebook"),
                     ("01_second_topic.html", "01 · The second notebook")]
    rows = re.findall(r'<tr class="notebook">(.*?)</tr>', text, re.S)
    assert len(rows) == 2
    first, second = rows
    assert '<td class="ok">ok</td>' in first and '<td class="num">1.5</td>' in first and "smoke" in first
    assert '<td class="num">2.2</td>' in second or '<td class="num">2.3</td>' in second   # round(2.25, 1)
    # the headline metrics of slrnet.suite, in its order: val_miou first, run times last
    expected = list(headline_metrics({"seconds": 3.0, "val_miou": 0.51234, "per_class": {"miou": 0.4},
                                      "pixel_acc": 0.9}))
    shown = re.findall(r"<code>([\w.]+)</code> = ", first)
    assert shown == expected and shown[0] == "val_miou"
    assert "0.5123" in first
    assert re.findall(r"<code>([\w.]+)</code> = ", second) == list(headline_metrics({"loss": 0.25, "num_images": 4}))


def test_pages_embed_their_figures_and_open_without_the_outputs_folder(outputs, tmp_path):
    root, made = outputs
    build_book(root, tmp_path / "site")
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "site", moved)
    shutil.rmtree(root)                                  # the site does not need outputs/ any more
    first = (moved / "00_first_topic.html").read_text(encoding="utf-8")
    second = (moved / "01_second_topic.html").read_text(encoding="utf-8")
    assert f"data:image/png;base64,{made['png']}" in first
    assert "<title>00 · The first notebook</title>" in first
    assert "hello" in second and "<img" not in second
    assert len(re.findall(r"<img\s", first)) == 1
    for page in (first, second):
        assert all(src.startswith("data:") for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', page))
        assert 'href="index.html"' in page               # the navigation bar
    assert 'href="01_second_topic.html"' in first and 'href="00_first_topic.html"' in second


def test_a_failed_or_unfinished_run_is_reported(tmp_path):
    root = tmp_path / "outputs"
    write_executed(root, "00_breaks", [
        new_markdown_cell("# 00 · Breaks"),
        new_code_cell("1 / 0", execution_count=1, outputs=[new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero", traceback=["ZeroDivisionError"])]),
    ], metrics=None, failed=True)
    write_executed(root, "01_no_metrics", [new_markdown_cell("# 01 · No metrics"), figure_cell(tiny_png())],
                   metrics=None)
    text = build_book(root).read_text(encoding="utf-8")
    rows = re.findall(r'<tr class="notebook">(.*?)</tr>', text, re.S)
    assert '<td class="failed">failed</td>' in rows[0] and "ZeroDivisionError: division by zero" in rows[0]
    assert '<td class="failed">failed</td>' in rows[1] and "metrics.json was not written" in rows[1]
    assert (root / "book" / "00_breaks.html").is_file()        # a failed notebook still has its page


def test_pages_of_notebooks_gone_from_the_outputs_are_removed(outputs):
    root, _ = outputs
    build_book(root)
    shutil.rmtree(root / "01_second_topic")
    build_book(root)
    assert sorted(p.name for p in (root / "book").glob("*.html")) == ["00_first_topic.html", "index.html"]
    assert [p.parent.name for p in executed_notebooks(root)] == ["00_first_topic"]


def test_without_executed_notebooks_it_says_run_make_run_first(tmp_path, capsys):
    (tmp_path / "empty" / "book").mkdir(parents=True)
    for root in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(NoExecutedNotebooks, match="run make run first"):
            build_book(root)
    assert cli.main(["book", "--output-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no executed notebooks in") and "run make run first" in err
    assert err.count("\n") == 1


def test_the_book_command(outputs, capsys):
    root, _ = outputs
    assert cli.main(["book", "--output-root", str(root), "--book-dir", str(root / "site")]) == 0
    assert str(root / "site" / "index.html") in capsys.readouterr().out
    assert (root / "site" / "00_first_topic.html").is_file()
