"""End to end in headless Chromium: upload a wav, Continue, then Compare two utterances.

Uses the system browser (Debian ``chromium``) driven by Playwright; no browser download.
Skipped (with the reason) only when chromium or playwright is absent. The screenshot is a test
artifact: ``$TWISTLM_TEST_ARTIFACTS/demo_browser.png`` (default: the test's tmp dir).
"""

import os
import re
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TWISTLM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# ~30-40 s on 2 busy cores (a server, models and a browser): slow as well as browser
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _skip_reason() -> str | None:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'playwright>=1.40,<2')"
    try:
        import gradio  # noqa: F401
    except ImportError:
        return "gradio is not installed (pip install 'twistlm[demo]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# JS: resolve with the duration of the audio behind a component's download link once the browser
# can play it (-1 when it cannot be decoded).
PLAYABLE_JS = """async (sel) => {
  const a = document.querySelector(sel + ' a[download]');
  if (!a || !a.href) return null;
  const el = new Audio(a.href);
  return await new Promise((resolve) => {
    el.oncanplaythrough = () => resolve(el.duration);
    el.onerror = () => resolve(-1);
  });
}"""


@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_continue_and_compare_in_chromium(tmp_path, tiny_speech_lm):
    from playwright.sync_api import sync_playwright
    from test_demo_handlers import build_quickstart_layout

    from twistlm.demo.app import build_app
    from twistlm.demo.backend import DemoBackend, resolve_paths

    qs = build_quickstart_layout(tiny_speech_lm, tmp_path / "qs", cold=False)
    backend = DemoBackend(resolve_paths(qs), asr="off")
    page, kwargs, _ = build_app(backend, tmp_path / "out")
    _, url, _ = page.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **kwargs,
    )
    artifacts = Path(os.environ.get("TWISTLM_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    prompt = qs / "report/samples/prompt_0.wav"
    a, b = qs / "benchmarks/tSC/0_correct.wav", qs / "benchmarks/tSC/0_incorrect.wav"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tab = browser.new_page(viewport={"width": 1280, "height": 1000})
            tab.set_default_timeout(120_000)
            tab.goto(url)
            # Continue: upload, wait for the upload to land, press the button
            tab.locator("#continue-prompt input[type=file]").set_input_files(str(prompt))
            tab.wait_for_selector("#continue-prompt a[download]")
            tab.click("#continue-button")
            tab.wait_for_selector("#continuation-audio a[download]")
            seconds = tab.evaluate(PLAYABLE_JS, "#continuation-audio")
            assert seconds is not None and seconds > 0, "continuation audio is not playable"
            assert tab.locator("#continue-message").inner_text().strip() == "Done."
            details = tab.locator("#continue-details").inner_text()
            assert re.search(r"continuation \d+ units = [\d.]+ s", details), details
            tab.screenshot(path=str(artifacts / "demo_browser_continue.png"), full_page=True)

            # Compare: two uploads -> the likelihood panel shows two numbers and a preference
            tab.get_by_role("tab", name="Compare").click()
            tab.locator("#compare-a input[type=file]").set_input_files(str(a))
            tab.locator("#compare-b input[type=file]").set_input_files(str(b))
            tab.wait_for_selector("#compare-a a[download]")
            tab.wait_for_selector("#compare-b a[download]")
            tab.click("#compare-button")
            panel = tab.locator("#likelihood-panel")
            panel.get_by_text("mean log-likelihood per unit").wait_for()
            text = panel.inner_text()
            row = next(ln for ln in text.splitlines() if "mean log-likelihood" in ln)
            numbers = [float(x) for x in re.findall(r"-?\d+\.\d+", row)]
            assert len(numbers) == 2 and all(x < 0 for x in numbers), row
            pref = re.search(r"prefers (A|B)|no preference", text)
            assert pref, text
            expected = "A" if numbers[0] > numbers[1] else "B"
            assert pref.group(1) == expected
            tab.screenshot(path=str(artifacts / "demo_browser.png"), full_page=True)

            # bad input is a message in the page, not a stack trace
            bad = tmp_path / "not_audio.wav"
            bad.write_text("plain text")
            tab.locator("#compare-b button[aria-label='Clear']").click()
            tab.locator("#compare-b input[type=file]").set_input_files(str(bad))
            tab.click("#compare-button")
            tab.locator("#compare-message").get_by_text("not audio").wait_for()
            browser.close()
    finally:
        page.close()
    assert (artifacts / "demo_browser.png").stat().st_size > 10_000
