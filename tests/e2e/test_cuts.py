"""A connection to ComfyUI that breaks mid-answer: the image still arrives, nothing runs twice.

The simulator does the work (queues the prompt, reads the file), then hangs
up before or during its answer, as a flaky network or proxy would.
"""

from __future__ import annotations

import requests

from .harness import Simulator, chain
from .pictures import inverted, pixel


def _counts(sim: Simulator) -> tuple[int, int]:
    stats = sim.stats()
    return stats["prompts_accepted"], stats["prompts_executed"]


def test_a_cut_answer_to_post_prompt_still_gives_the_image_once(
    sim: Simulator, make_gateway
) -> None:
    gateway = make_gateway(sim.url)
    before = _counts(sim)
    sim.control("config", cut={"path": "/prompt"})
    response = gateway.post("/api/generate_file", json={"workflow_data": chain(0x123456)})
    assert response.status_code == 200, response.text
    assert pixel(response.content) == inverted(0x123456)
    # ComfyUI took the prompt once and ran it once: it was not sent again.
    assert _counts(sim) == (before[0] + 1, before[1] + 1)
    assert sim.stats()["queue_depth_max"] <= 1
    assert "asking ComfyUI whether it has it" in gateway.logs()


def test_a_cut_answer_and_a_cut_history_read(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    before = _counts(sim)
    sim.control("config", cut=[{"path": "/prompt"}, {"path": "/history"}])
    response = gateway.post("/api/generate_file", json={"workflow_data": chain(0x224466)})
    assert response.status_code == 200, response.text
    assert pixel(response.content) == inverted(0x224466)
    assert _counts(sim) == (before[0] + 1, before[1] + 1)


def test_an_output_cut_mid_file_is_read_again_and_whole(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", cut={"path": "/view", "body_bytes": 20})
    response = gateway.post("/api/generate_file", json={"workflow_data": chain(0x336699, 48)})
    assert response.status_code == 200, response.text
    assert pixel(response.content) == inverted(0x336699)
    prompt_id = response.headers["X-Prompt-Id"]
    image = sim.get(f"/history/{prompt_id}")[prompt_id]["outputs"]["3"]["images"][0]
    original = requests.get(f"{sim.url}/view", params=image, timeout=10).content
    assert response.content == original  # byte for byte what ComfyUI holds


def test_api_view_and_history_survive_a_cut(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    done = gateway.post("/api/generate", json={"workflow_data": chain(0x445566, 40)}).json()
    prompt_id = done["prompt_id"]
    entry = sim.get(f"/history/{prompt_id}")[prompt_id]
    image = entry["outputs"]["3"]["images"][0]
    whole = gateway.get("/api/view", params=image)
    assert whole.status_code == 200
    sim.control("config", cut={"path": "/view", "body_bytes": 30})
    again = gateway.get("/api/view", params=image)
    assert again.status_code == 200 and again.content == whole.content
    sim.control("config", cut={"path": f"/history/{prompt_id}"})
    history = gateway.get(f"/api/history/{prompt_id}")
    assert history.status_code == 200, history.text
