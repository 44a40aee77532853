"""The notebooks as their users meet them: JupyterLab in a real (headless) Chromium, every explorer widget used.

For each notebook with an ipywidgets explorer, this test

1. writes a copy with the smoke profile and ``interactive = True`` (papermill's parameter injection, not run),
2. starts JupyterLab from this environment on 127.0.0.1 (a free port, a random token),
3. opens the copy in Chromium (Debian's ``chromium``, driven by Playwright; nothing is downloaded), runs all
   cells through JupyterLab's own ``notebook:run-all-cells`` command and waits for the kernel,
4. fails on any error output (a traceback in a cell, a widget that could not be displayed),
5. then moves each control of the explorer -- slider one step, dropdown to another entry, toggle to another
   button -- and waits until the explorer's figure has been redrawn (its PNG changed), timing each move.

Screenshots before and after each move go to ``outputs/browser/``; the timings to
``outputs/browser/timings.json``. Run with ``make test-browser`` (it installs Playwright and, where it can,
Debian's chromium first). Without a browser the test is skipped, saying why.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("SLRNET_BROWSER_OUT", REPO / "outputs" / "browser"))
# notebook -> what its explorer is (for the report): the widgets of its last cell with a widget Output
EXPLORERS = {
    "00_dataset_tour": "sample browser",
    "01_collective_matrix_factorization": "CVLR explorer",
    "03_train_semi_supervised": "prediction explorer",
    "04_visualize_low_rank_factors": "factor explorer",
    "05_evaluate": "prediction explorer",
    "06_two_stage": "prediction explorer",
}
NOTEBOOK_TIMEOUT_S = 600          # one notebook's run-all, smoke profile
REDRAW_TIMEOUT_S = 60
ERROR_MARKERS = ("Traceback (most recent call last)", "Error displaying widget", "Failed to load model class",
                 "Error rendering output")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder laid out like the repository (``configs/`` beside ``notebooks/``) holding the prepared copies."""
    import papermill

    root = tmp_path_factory.mktemp("lab")
    (root / "configs").symlink_to(REPO / "configs")
    (root / "notebooks").mkdir()
    for stem in EXPLORERS:
        papermill.execute_notebook(str(REPO / "notebooks" / f"{stem}.ipynb"),
                                   str(root / "notebooks" / f"{stem}.ipynb"), prepare_only=True,
                                   kernel_name="python3", progress_bar=False,
                                   parameters={"profile": "smoke", "interactive": True,
                                               "output_dir": str(root / "outputs" / stem)})
    return root


@pytest.fixture(scope="module")
def lab(workspace):
    """A JupyterLab server from this environment: (base URL, token); stopped afterwards."""
    port, token = _free_port(), uuid.uuid4().hex
    settings = workspace / "lab-settings"      # the user's own JupyterLab settings stay out of it
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false"}')        # no "get notified about news?" toast over the page
    env = {**os.environ, "SLRNET_NO_PROGRESS": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(workspace / "lab-workspaces")}
    log = open(workspace / "jupyterlab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
                             f"--ServerApp.root_dir={workspace}", "--LabApp.expose_app_in_browser=True",
                             "--ServerApp.disable_check_xsrf=True"] + (["--allow-root"] if os.geteuid() == 0 else []),
                            cwd=workspace, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.close()
                proc.kill()
                pytest.fail(f"JupyterLab did not start:\n{(workspace / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield base, token
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page(chromium, lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


def page_errors(page) -> list[str]:
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [t[:2000] for t in texts if any(marker in t for marker in ERROR_MARKERS)]


def run_all_cells(page, base: str, token: str, stem: str) -> float:
    """Open the notebook, run every cell with JupyterLab's command, wait until all have run; seconds taken."""
    # a workspace of its own (reset): only this notebook open, so it is the current widget
    page.goto(f"{base}/lab/workspaces/{stem}/tree/notebooks/{stem}.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    page.wait_for_function("""(path) => {
        const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        return w && w.context && w.context.path === path && w.sessionContext && w.sessionContext.session
               && w.sessionContext.session.kernel
               && w.sessionContext.session.kernel.connectionStatus === 'connected'
               && w.sessionContext.session.kernel.status === 'idle';
    }""", arg=f"notebooks/{stem}.ipynb", timeout=120_000)
    start = time.perf_counter()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.time() + NOTEBOOK_TIMEOUT_S
    while True:
        state = page.evaluate("""() => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            const cells = nb.widgets.filter(c => c.model.type === 'code');
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            return {pending: cells.filter(c => c.model.executionCount === null || c.promptNode.textContent.includes('*')).length,
                    code_cells: cells.length, status: kernel.status};
        }""")
        errors = page_errors(page)
        if errors:
            pytest.fail(f"{stem}: a cell raised:\n{errors[0]}")
        if state["pending"] == 0 and state["status"] == "idle":
            return time.perf_counter() - start
        if state["status"] == "idle" and time.perf_counter() - start > 60 and state["pending"] == state["code_cells"]:
            pytest.fail(f"{stem}: run-all did not start any cell within 60 s ({state})")
        if time.time() > deadline:
            pytest.fail(f"{stem}: cells still running after {NOTEBOOK_TIMEOUT_S} s ({state})")
        time.sleep(1.0)


MARK_OLD_FIGURE = """e => { const imgs = e.querySelectorAll('.widget-output img');
                             imgs.forEach(i => i.dataset.seen = '1'); return imgs.length ? imgs[imgs.length - 1].src : null; }"""
NEW_FIGURE_SHOWN = """e => { const imgs = e.querySelectorAll('.widget-output img');
                             return imgs.length > 0 && !imgs[imgs.length - 1].dataset.seen; }"""


def controls(explorer) -> list[tuple[str, str, object]]:
    """(kind, description, locator) of every control of the explorer, in order."""
    found = []
    for box in explorer.locator(".widget-slider, .widget-dropdown, .widget-toggle-buttons").all():
        label = box.locator(".widget-label").first.inner_text().strip() if box.locator(".widget-label").count() else ""
        classes = box.get_attribute("class") or ""
        kind = "slider" if "widget-slider" in classes else "dropdown" if "widget-dropdown" in classes else "toggle"
        found.append((kind, label, box))
    return found


def move(page, kind: str, box) -> str:
    """Change the control's value by one step; returns what was done, '' when there is nothing to change."""
    if kind == "slider":
        handle = box.locator(".noUi-handle").first
        now, top = float(handle.get_attribute("aria-valuenow")), float(handle.get_attribute("aria-valuemax"))
        low = float(handle.get_attribute("aria-valuemin"))
        if top == low:
            return ""
        handle.focus()
        key = "ArrowRight" if now < top else "ArrowLeft"
        page.keyboard.press(key)
        return f"{key} from {now:g}"
    if kind == "dropdown":
        select = box.locator("select")
        options = select.locator("option").all_inner_texts()
        if len(options) < 2:
            return ""
        current = select.evaluate("s => s.selectedIndex")
        target = 1 if current != 1 else 0
        select.select_option(index=target)
        return f"picked {options[target]!r}"
    buttons = box.locator("button")
    for i in range(buttons.count()):
        if "mod-active" not in (buttons.nth(i).get_attribute("class") or ""):
            buttons.nth(i).click()
            return f"clicked {buttons.nth(i).inner_text().strip()!r}"
    return ""


@pytest.mark.parametrize("stem", list(EXPLORERS))
def test_explorer_widgets_respond(stem, page, lab):
    base, token = lab
    OUT.mkdir(parents=True, exist_ok=True)
    run_seconds = run_all_cells(page, base, token, stem)
    explorer = page.locator(".jp-CodeCell:has(.widget-output) .jp-Cell-outputWrapper").last
    explorer.wait_for(timeout=60_000)
    page.wait_for_function("e => e.querySelector('.widget-output img') !== null", arg=explorer.element_handle(),
                           timeout=REDRAW_TIMEOUT_S * 1000)
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(OUT / f"{stem}_before.png"))
    if stem == "04_visualize_low_rank_factors":
        page.screenshot(path=str(OUT / "factor_explorer_jupyterlab.png"))
    moves = []
    for index, (kind, label, box) in enumerate(controls(explorer)):
        before = explorer.evaluate(MARK_OLD_FIGURE)
        start = time.perf_counter()
        action = move(page, kind, box)
        if not action:
            moves.append({"control": label, "kind": kind, "action": "none (a single value)"})
            continue
        page.wait_for_function(NEW_FIGURE_SHOWN, arg=explorer.element_handle(), timeout=REDRAW_TIMEOUT_S * 1000)
        seconds = time.perf_counter() - start
        after = explorer.evaluate(MARK_OLD_FIGURE)
        assert after != before, f"{stem}: {label or kind} ({action}) redrew the same figure"
        errors = page_errors(page)
        assert not errors, f"{stem}: moving {label or kind} raised:\n{errors[0]}"
        explorer.screenshot(path=str(OUT / f"{stem}_{index}_{kind}_after.png"))
        moves.append({"control": label, "kind": kind, "action": action, "redraw_s": round(seconds, 3)})
    moved = [m for m in moves if "redraw_s" in m]
    assert moved, f"{stem}: the explorer has no control that could be moved ({moves})"
    timings = json.loads((OUT / "timings.json").read_text()) if (OUT / "timings.json").exists() else {}
    timings[stem] = {"explorer": EXPLORERS[stem], "run_all_s": round(run_seconds, 1), "moves": moves}
    (OUT / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    assert not page_errors(page)
