"""What a reviewer sees in the real MLflow UI after ``lmops run --config tiny`` (issue 10).

``lmops ui`` serves the ``tiny_run`` home and Debian's Chromium, driven by Playwright, opens
the registered version and its training run. Playwright's own browsers are never
downloaded: the test uses /usr/bin/chromium or skips. Screenshots go to
``<home>/../ui-screens`` and, when ``LMOPS_UI_SCREENS`` is set, are copied there too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import LMOPS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MODEL, VERSION = "lmops-tiny", "1"
# First paint of a page on a loaded 2-core machine can take tens of seconds.
TIMEOUT_MS = 90_000

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is missing: apt-get install -y chromium (no browser is downloaded)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
expect = sync_api.expect


# --- assertions -----------------------------------------------------------------------------


def assert_visible(page, texts: list[str], timeout_ms: int = TIMEOUT_MS) -> None:
    """Every text in ``texts`` is visible on ``page``; all misses are reported at once.

    A text matches case-insensitively as a substring of an element's text (Playwright's
    ``get_by_text``); "visible" means rendered, possibly scrolled out of view.
    """
    missing = []
    for i, text in enumerate(texts):
        loc = page.get_by_text(text).filter(visible=True).first
        try:
            # The page is loaded once; only the first check waits for it.
            expect(loc).to_be_visible(timeout=timeout_ms if i == 0 else 5_000)
        except AssertionError:
            missing.append(text)
    assert missing == [], f"not visible on {page.url}: {missing}"


def assert_heading(page, name: str) -> None:
    """``name`` is a rendered heading (markdown ``#``/``##``), not a line of raw markdown."""
    expect(page.get_by_role("heading", name=name, exact=True).first).to_be_visible()


# --- the UI server and the browser ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


@pytest.fixture(scope="module")
def ui(tiny_run):
    """``lmops ui`` on the tiny_run home, started as run_cli starts the CLI; its base URL."""
    home, _ = tiny_run
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "PREFECT_API_URL")
    }
    env.update({"LMOPS_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    log = home.parent / "lmops-ui.log"
    with log.open("wb") as out:
        # Its own session: `lmops ui` execs into MLflow, whose workers stop with the group.
        proc = subprocess.Popen(
            [LMOPS, "ui", "--port", str(port)],
            cwd=home.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if _get(f"{base}/health").strip() == b"OK":
                    break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"lmops ui did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # Tall, so the version description and the run's tables fit one screenshot.
    ctx = browser.new_context(viewport={"width": 1440, "height": 2000})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    ctx.close()


@pytest.fixture(scope="module")
def screens(tiny_run):
    home, _ = tiny_run
    folder = home.parent / "ui-screens"
    folder.mkdir(exist_ok=True)
    return folder


# Viewport height that shows the whole of every scroller at least half the window tall
# (<main>, the artifact preview); small boxes such as the tags table keep their scrollbar.
_HEIGHT = """() => {
  const vh = window.innerHeight;
  let extra = 0;
  for (const e of document.querySelectorAll("*")) {
    const oy = getComputedStyle(e).overflowY;
    if ((oy === "auto" || oy === "scroll") && e.clientHeight > vh / 2)
      extra = Math.max(extra, e.scrollHeight - e.clientHeight);
  }
  return Math.min(vh + extra + 40, 16000);
}"""


def shoot(page, folder: Path, name: str, whole: bool = True) -> Path:
    """Save a screenshot; copy it to ``$LMOPS_UI_SCREENS`` if set.

    MLflow scrolls its content inside page-sized containers, which ``full_page`` does not
    unroll, so ``whole`` grows the viewport by the largest such overflow for the shot.
    """
    path = folder / f"{name}.png"
    size = page.viewport_size
    if whole:
        page.set_viewport_size({"width": size["width"], "height": page.evaluate(_HEIGHT)})
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    extra = os.environ.get("LMOPS_UI_SCREENS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(extra) / path.name)
    return path


def close_assistant(page) -> None:
    """Close the "MLflow Assistant" side panel when it is open: it takes a third of the width."""
    title = page.get_by_text("MLflow Assistant")
    close = page.get_by_role("button", name="Close", exact=True)
    if title.count() and close.count() == 1:
        close.click()
        expect(close).to_have_count(0)  # a small "MLflow Assistant" button stays


def _version(ui: str) -> dict:
    q = f"name={MODEL}&version={VERSION}"
    return json.loads(_get(f"{ui}/ajax-api/2.0/mlflow/model-versions/get?{q}"))["model_version"]


# --- the pages ------------------------------------------------------------------------------


# Text a reviewer must find on the version page; append as the description grows.
VERSION_PAGE_TEXTS = [
    "Intended use",
    "eval/perplexity",
    "Bias, Risks, and Limitations",
    "lmops.gate.staging",
    "eval.perplexity",
    # Review: the history of decisions and the links to the evidence's runs.
    "Promotion history",
    "gate passed",
    "lmops.ingest_run",
    "lmops.mlflow_run",
]


def test_version_page_shows_card_alias_and_evidence(ui, page, screens):
    page.goto(f"{ui}/#/models/{MODEL}/versions/{VERSION}")
    expect(page.get_by_text("Intended use").first).to_be_visible()
    shoot(page, screens, "01-version-first-view", whole=False)
    close_assistant(page)
    shoot(page, screens, "02-version")
    assert_visible(page, VERSION_PAGE_TEXTS)
    # The description is the model card rendered as markdown: headings and a table.
    for heading in (MODEL, "Intended use", "Bias, Risks, and Limitations"):
        assert_heading(page, heading)
    # Metrics as list items: MLflow draws a description's tables without cell borders.
    expect(page.get_by_text("eval/perplexity").first).to_be_visible()
    runs = page.locator("a[href*='#/experiments/']").filter(has_text=re.compile(r"^[0-9a-f]{32}$"))
    expect(runs.nth(1)).to_be_visible()  # waits for links to the training and ingest runs
    assert page.get_by_text("## Intended use").count() == 0, "markdown shown raw"
    # The alias in the version's header, not only in the description's history.
    header = page.get_by_test_id("descriptions-item").filter(has_text="Aliases")
    expect(header).to_contain_text("staging")
    # The evidence the gate read, each tag in its own row of the Tags table.
    gate = _tag_row(page, "lmops.gate.staging")
    expect(gate).to_contain_text("passed")
    expect(_tag_row(page, "eval.perplexity")).to_be_visible()
    gate.scroll_into_view_if_needed()
    shoot(page, screens, "03-version-gate-tags")


def _tag_row(page, key: str):
    cell = page.get_by_role("cell", name=key, exact=True)
    return page.get_by_role("row").filter(has=cell)


def test_training_run_artifacts_show_display_card(ui, page, screens):
    mv = _version(ui)
    run = json.loads(_get(f"{ui}/ajax-api/2.0/mlflow/runs/get?run_id={mv['run_id']}"))["run"]
    page.goto(f"{ui}/#/models/{MODEL}/versions/{VERSION}")
    # The version's "Source Run" link, followed as a reviewer would.
    page.get_by_role("link", name=run["info"]["run_name"], exact=True).click()
    expect(page).to_have_url(re.compile(f"/runs/{mv['run_id']}"))
    close_assistant(page)
    shoot(page, screens, "04-run-overview")
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text("model_card.md", exact=True).first.click()
    # Rendered as markdown: the card's title is a heading, not a "# lmops-tiny" line.
    assert_heading(page, MODEL)
    assert_heading(page, "Intended use")
    shoot(page, screens, "05-run-artifacts-model-card")
    # The display card has no YAML front matter: no "---" line or setext heading from one.
    assert page.get_by_text("---", exact=True).count() == 0
    assert page.get_by_role("heading", name=re.compile(r"^-+$|license:")).count() == 0
