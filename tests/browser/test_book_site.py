"""The rendered book (make book) as its readers meet it: index.html opened from disk (a file:// URL) in a headless
Chromium, every link of the index followed, each page checked to render its notebook with its figures (every
``<img>`` decoded: naturalWidth > 0; as many images as the notebook has PNG outputs).

Requests off the disk are refused, so this also shows the site needs neither a server nor the network (the CDN
scripts of nbconvert's template, MathJax among them, are the only ones refused). Two books: one built here from
tiny executed notebooks (always), and the real one from ``outputs/`` when ``make run`` has left executed notebooks
there. Without Playwright or a Chromium the test is skipped, saying why (``tests/browser/conftest.py``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from book_notebooks import write_two_notebooks

from slrnet.book import build_book, executed_notebooks

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("SLRNET_BROWSER_OUT", REPO / "outputs" / "browser"))
PAGE_TIMEOUT_MS = 60_000


def png_outputs(executed: Path) -> int:
    nb = json.loads(executed.read_text(encoding="utf-8"))
    return sum("image/png" in output.get("data", {}) for cell in nb["cells"] for output in cell.get("outputs", []))


@pytest.fixture(params=["tiny", "outputs"])
def book(request, tmp_path):
    """(which, index.html, {page name: PNG outputs of its notebook}) of a book built into tmp_path."""
    if request.param == "tiny":
        root = tmp_path / "outputs"
        write_two_notebooks(root)
    else:
        root = REPO / "outputs"
        if not executed_notebooks(root):
            pytest.skip("no executed notebooks in outputs/: run make run first to check the real book too")
    index = build_book(root, tmp_path / "book")
    return request.param, index, {f"{nb.stem}.html": png_outputs(nb) for nb in executed_notebooks(root)}


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        yield launched
        launched.close()


def offline_page(browser):
    """A page that may load file: and data: URLs only."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                  else route.abort())
    return context, context.new_page()


IMAGES = "imgs => imgs.map(i => ({src: i.src.slice(0, 40), complete: i.complete, width: i.naturalWidth}))"


def test_every_page_of_the_book_renders_with_its_figures(book, browser):
    which, index, figures = book
    context, page = offline_page(browser)
    try:
        page.goto(index.as_uri(), wait_until="load", timeout=PAGE_TIMEOUT_MS)
        assert page.locator("h1").inner_text() == "SLRNet notebooks"
        links = page.eval_on_selector_all("tr.notebook a", "as => as.map(a => [a.href, a.textContent])")
        assert [Path(unquote(urlparse(href).path)).name for href, _ in links] == list(figures), \
            "the index should link every notebook, in order"
        OUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUT / f"book_index_{which}.png"))
        for href, title in links:
            name = Path(unquote(urlparse(href).path)).name
            page.goto(index.as_uri(), wait_until="load", timeout=PAGE_TIMEOUT_MS)
            page.locator("tr.notebook a", has_text=title).first.click()       # follow the link itself
            page.wait_for_load_state("load", timeout=PAGE_TIMEOUT_MS)
            assert page.url == href, f"{title}: the link led to {page.url}"
            assert page.title() == title
            assert page.locator(".jp-Cell").count() > 0, f"{name}: no notebook cell rendered"
            heading = page.locator(".jp-RenderedMarkdown :is(h1, h2, h3, h4, h5, h6)", has_text=title).first
            assert heading.is_visible(), f"{name}: its heading is not shown"
            page.wait_for_function("() => Array.from(document.images).every(i => i.complete)",
                                   timeout=PAGE_TIMEOUT_MS)
            images = page.eval_on_selector_all("img", IMAGES)
            broken = [i for i in images if not i["width"]]
            assert not broken, f"{name}: images that did not render: {broken}"
            assert len(images) >= figures[name], f"{name}: {len(images)} images for {figures[name]} PNG outputs"
            assert all(i["src"].startswith("data:image/") for i in images), f"{name}: a figure is not embedded"
            for nav in page.eval_on_selector_all("nav.slrnet-book-nav a", "as => as.map(a => a.href)"):
                assert Path(unquote(urlparse(nav).path)).is_file(), f"{name}: its link {nav} leads nowhere"
    finally:
        context.close()
