"""Every UI workflow loaded in the real ComfyUI frontend (headless Chromium): its graphToPrompt()
equals the API workflow of the same name."""

from __future__ import annotations

import json
import shutil

import pytest

from stage import REPO, load_api, ui_workflows

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (harness venv)")
    if not shutil.which("chromium") and not (REPO / CHROMIUM).exists():
        pytest.skip("frontend tests skipped: Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            tab = browser.new_page()
            tab.goto(server.url, timeout=120_000)
            tab.wait_for_function("() => (window.app || window.comfyAPI?.app?.app)?.graph !== undefined",
                                  timeout=120_000)
            yield tab
        finally:
            browser.close()


def _frontend_prompt(page, workflow: dict) -> dict:
    """graphToPrompt() of ``workflow``; retried while the node definitions are still loading (the
    first load after start-up may see unknown node types)."""
    for _ in range(60):
        prompt = _load_and_convert(page, workflow)
        if all(node.get("class_type") for node in prompt.values()):
            return prompt
        page.wait_for_timeout(500)
    return prompt


def _load_and_convert(page, workflow: dict) -> dict:
    return page.evaluate(
        """async (wf) => {
            const app = window.app || window.comfyAPI.app.app;
            await app.loadGraphData(wf);
            const p = await app.graphToPrompt();
            return p.output;
        }""",
        workflow,
    )


FRONTEND_ONLY_INPUTS = {"audioUI"}
"""Widgets the frontend adds to the prompt that no node declares (the audio player); the server
ignores them, and the API files do not carry them."""


def _comparable(prompt: dict) -> dict:
    return {k: {"class_type": v["class_type"],
                "inputs": {n: x for n, x in v["inputs"].items() if n not in FRONTEND_ONLY_INPUTS}}
            for k, v in prompt.items()}


@pytest.mark.parametrize("path", ui_workflows(), ids=lambda p: p.stem)
def test_ui_workflow_gives_its_api_twin(page, path):
    api_path = REPO / "workflows" / "api" / path.name
    assert api_path.is_file(), f"{path.name} has no API twin in workflows/api/"
    workflow = json.loads(path.read_text(encoding="utf-8"))
    got = _frontend_prompt(page, workflow)
    assert _comparable(got) == _comparable(load_api(api_path))
