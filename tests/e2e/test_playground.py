"""The playground page in a real headless Chromium, against gunicorn and the simulator.

One ComfyUI version is enough here: the page only talks to the gateway, whose
answers the other e2e tests already check against both versions.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .browser import CHROMIUM_ARGS, chromium_path, failed
from .harness import ROOT, Gateway, Simulator
from .pictures import png

KEY = "csk_playground-test-key"
# Generous: two cores shared with other test runs and a browser.
UI_WAIT = 30_000
RUN_WAIT = 90_000
SD_INPUTS = {"checkpoint": "random-sd15.safetensors", "width": "64", "height": "64"}
# True while the page shows a sampler step of a run under way (a function: the CSP forbids eval).
MID_RUN = """() => {
    const text = (id) => document.getElementById(id).textContent;
    const done = document.getElementById("progress").value;
    return text("run-status") === "running" && done > 0 && done < 1
        && /KSampler step \\d of 6/.test(text("progress-text"));
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()  # skip (or fail under CI) before starting anything
    expect.set_options(timeout=UI_WAIT)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    simulator = Simulator().start()
    # The sampler takes its time, so the page has progress to show while it runs.
    simulator.control("config", class_delay_ms={"KSampler": 2500})
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def gateway(sim: Simulator) -> Iterator[Gateway]:
    # The shipped workflows: typed parameters with bounds, a seed, an image input.
    env = {"WORKFLOWS_DIR": os.path.join(ROOT, "workflows"), "API_KEYS": KEY}
    service = Gateway(sim.url, env=env).start()
    yield service
    service.stop()


class Tab:
    """A fresh browser context (empty localStorage) on the page, and what went wrong in it."""

    def __init__(self, browser: Browser, gateway: Gateway) -> None:
        self.gateway = gateway
        self.context = browser.new_context()
        self.context.set_default_timeout(UI_WAIT)
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda err: self.problems.append(f"script error: {err}"))
        self.page.on("console", self._console)
        self.page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: Any) -> None:
        if message.type == "error":  # CSP violations and failed loads land here too
            self.problems.append(f"console: {message.text}")

    def open(self, path: str = "/") -> Page:
        self.page.goto(self.gateway.url + path)
        return self.page

    def sign_in(self) -> None:
        """Type the key and wait for the workflows it unlocks."""
        expect(self.page.locator("#notice")).to_contain_text("needs an API key")
        expect(self.page.locator("#history-note")).to_contain_text("needs an API key")
        self.page.fill("#api-key", KEY)
        self.page.press("#api-key", "Enter")
        expect(self.page.locator("#workflow option")).not_to_have_count(0)
        # The calls made before the key was typed were refused, as they should be.
        assert all("status of 401 " in p for p in self.problems), self.problems
        self.problems.clear()

    def pick(self, workflow: str) -> None:
        self.page.select_option("#workflow", workflow)
        expect(self.page.locator("#fields")).to_have_attribute("data-workflow", workflow)

    def fill(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self.page.fill(f"#field-{name}", value)

    def field_error(self, name: str) -> Any:
        return self.page.locator(f'.field[data-name="{name}"] .field-error')

    def expect_field_error(self, name: str, text: str) -> None:
        """The field shows the gateway's reason, where the user sees it."""
        error = self.field_error(name)
        expect(error).to_be_visible()
        expect(error).to_contain_text(text)

    def run(self) -> str:
        """Click Run; the id of the run the page started."""
        shown = self.page.locator("#run-id")
        previous = shown.text_content() or ""
        self.page.click("#run-button")
        expect(self.page.locator("#result-panel")).to_be_visible()
        expect(shown).not_to_have_text(previous)
        run_id = shown.inner_text()
        assert re.fullmatch(r"[0-9a-f-]{36}", run_id), run_id
        return run_id

    def wait_for_success(self) -> None:
        expect(self.page.locator("#run-status")).to_have_text("success", timeout=RUN_WAIT)

    def assert_clean(self, *refused: int) -> None:
        """No script error, no console error (CSP violations included) but the refusals
        the test caused (HTTP statuses), and nothing asked of another origin."""
        expected = tuple(f"status of {code} " for code in refused)
        assert [p for p in self.problems if not any(e in p for e in expected)] == []
        ours = (self.gateway.url, "data:", "blob:")
        assert [url for url in self.requests if not url.startswith(ours)] == []


@pytest.fixture
def tab(browser: Browser, gateway: Gateway, request: pytest.FixtureRequest, tmp_path) -> Iterator:
    opened = Tab(browser, gateway)
    yield opened
    if failed(request.node):
        shot = tmp_path / "playground.png"
        opened.page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failed page: {shot}")
    opened.context.close()


def _pixel(gateway: Gateway, url: str) -> tuple[int, ...]:
    """The top-left pixel of an image the page shows, fetched as any browser would."""
    response = requests.get(requests.compat.urljoin(gateway.url, url), timeout=30)
    response.raise_for_status()
    return Image.open(io.BytesIO(response.content)).convert("RGB").getpixel((0, 0))


def test_the_page_loads_without_a_key_under_a_strict_policy_and_keeps_the_key(
    tab: Tab, gateway: Gateway
) -> None:
    for path in ("/", "/playground"):
        response = gateway.get(path)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        scripts = re.findall(r"<script\b([^>]*)>", response.text)
        assert scripts and all("src=" in attributes for attributes in scripts)  # files of ours
    page = tab.open()
    tab.sign_in()  # the page came up without a key and asked for one
    expect(page.locator("#notice")).to_be_hidden()
    options = page.locator("#workflow option").all_inner_texts()
    assert {"demo_invert", "demo_image_invert", "sd_txt2img"} <= set(options)

    page.reload()  # the key stays in this browser
    expect(page.locator("#api-key")).to_have_value(KEY)
    expect(page.locator("#workflow option")).not_to_have_count(0)
    tab.assert_clean()


def test_a_run_shows_live_progress_its_image_timings_curl_and_history(tab: Tab) -> None:
    page = tab.open()
    tab.sign_in()
    tab.pick("sd_txt2img")
    expect(page.locator(".field")).to_have_count(11)
    # The seed's bound, 2^64 - 1, shown digit for digit (past what a JS number holds).
    expect(page.locator('.field[data-name="seed"] .hint')).to_contain_text("18446744073709551615")
    seed = page.locator("#field-seed")
    before = seed.input_value()
    page.click('.field[data-name="seed"] .dice')
    rolled = seed.input_value()
    assert rolled != before and 0 <= int(rolled) < 2**53
    tab.fill({**SD_INPUTS, "prompt": "a lighthouse at dusk", "steps": "6"})

    run_id = tab.run()
    # Live: while the sampler runs the page says so, with the bar part way.
    page.wait_for_function(MID_RUN, timeout=RUN_WAIT)
    tab.wait_for_success()

    image = page.locator("#images img")
    expect(image).to_have_count(1)
    expect(image).to_have_js_property("naturalWidth", 64)
    expect(page.locator("#timings")).to_be_visible()
    expect(page.locator("#timings")).to_contain_text("total")
    curl = page.locator("#curl").inner_text()
    assert "/api/run" in curl and "Accept: text/event-stream" in curl
    assert '"prompt":"a lighthouse at dusk"' in curl and f'"seed":{rolled}' in curl
    assert "$COMFYSYNC_API_KEY" in curl and KEY not in curl

    first = page.locator("#history li").first
    expect(first).to_have_attribute("data-run-id", run_id)
    expect(first.locator("img.thumb")).to_have_attribute("src", image.get_attribute("src") or "")
    expect(first.locator("img.thumb")).to_have_js_property("naturalWidth", 64)

    # A fresh page opens the run again from its history entry.
    page.reload()
    page.locator(f'#history li[data-run-id="{run_id}"] button').click()
    expect(page.locator("#run-id")).to_have_text(run_id)
    expect(page.locator("#run-status")).to_have_text("success")
    expect(page.locator("#images img")).to_have_js_property("naturalWidth", 64)
    tab.assert_clean()


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on this machine")
def test_the_curl_command_shown_runs_the_same(tab: Tab, gateway: Gateway) -> None:
    page = tab.open()
    tab.sign_in()
    tab.pick("demo_invert")
    tab.fill({"width": "24", "height": "16", "color": "0xff0000"})
    tab.run()
    tab.wait_for_success()
    assert _pixel(gateway, page.locator("#images img").get_attribute("src") or "") == (0, 255, 255)

    command = page.locator("#curl").inner_text()
    env = {"PATH": os.environ["PATH"], "COMFYSYNC_API_KEY": KEY}
    done = subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "event: succeeded" in done.stdout
    url = re.search(r'"url":\s*"([^"]+)"', done.stdout.split("event: succeeded")[1])
    assert url is not None
    image = requests.get(requests.compat.urljoin(gateway.url, url.group(1)), timeout=30)
    assert Image.open(io.BytesIO(image.content)).size == (24, 16)
    tab.assert_clean()


def test_bad_values_show_each_fields_error_and_start_nothing(tab: Tab, gateway: Gateway) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    runs_before = gateway.get("/api/runs?limit=100", headers=auth).json()["runs"]
    page = tab.open()
    tab.sign_in()
    tab.pick("demo_invert")
    tab.fill({"width": "5000", "height": "abc"})
    page.click("#run-button")

    tab.expect_field_error("width", "above the maximum of 4096")
    tab.expect_field_error("height", "not an integer")
    expect(tab.field_error("color")).to_be_hidden()
    expect(page.locator("#field-width")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#result-panel")).to_be_hidden()
    assert gateway.get("/api/runs?limit=100", headers=auth).json()["runs"] == runs_before

    # Mended, the same form runs and the errors go.
    tab.fill({"width": "20", "height": "10"})
    tab.run()
    tab.wait_for_success()
    expect(tab.field_error("width")).to_be_hidden()
    expect(page.locator("#images img")).to_have_js_property("naturalWidth", 20)
    tab.assert_clean(400)


def test_an_image_from_a_refused_url_then_from_an_upload(
    tab: Tab, gateway: Gateway, tmp_path
) -> None:
    page = tab.open()
    tab.sign_in()
    tab.pick("demo_image_invert")
    page.fill('[name="image-url"]', "http://127.0.0.1:9/nothing.png")
    page.click("#run-button")
    tab.expect_field_error("image", "blocked address")

    upload = tmp_path / "red.png"
    upload.write_bytes(png((12, 8), (255, 0, 0)))
    page.fill('[name="image-url"]', "")
    page.set_input_files("#field-image", str(upload))
    expect(page.locator(".field .preview")).to_have_js_property("naturalWidth", 12)
    tab.run()
    tab.wait_for_success()
    expect(tab.field_error("image")).to_be_hidden()
    shown = page.locator("#images img")
    expect(shown).to_have_js_property("naturalWidth", 12)
    assert _pixel(gateway, shown.get_attribute("src") or "") == (0, 255, 255)  # red, inverted
    curl = page.locator("#curl").inner_text()
    assert "--form-string 'payload=" in curl and "-F 'image=@red.png'" in curl
    tab.assert_clean(400)
