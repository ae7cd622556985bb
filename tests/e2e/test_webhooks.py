"""Signed webhooks with retries across restarts, against the real service and a real receiver."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest

from .harness import Simulator, chain, until
from .receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"comfysync-webhook-test-key").decode()
# Loopback receivers are allowed only because the tests say so.
ENV = {
    "WEBHOOK_SECRET": SECRET,
    "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "WEBHOOK_RETRY_BASE": "0.2",
    "WEBHOOK_TIMEOUT": "0.5",
}


@pytest.fixture
def receivers() -> Iterator:
    made: list[Receiver] = []

    def make(script=None, then=204) -> Receiver:
        receiver = Receiver(SECRET, script, then)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.stop()


def _run(gateway, body: dict) -> str:
    response = gateway.post("/api/run", json=body)
    assert response.status_code == 201, response.text
    return response.json()["run_id"]


def _webhook_state(gateway, run_id: str, state: str) -> dict:
    def reached():
        body = gateway.get(f"/api/status/{run_id}").json()
        return body if (body.get("webhook") or {}).get("state") == state else None

    return until(reached, timeout=30)


def test_retried_until_delivered_once_with_one_id(sim: Simulator, make_gateway, receivers):
    receiver = receivers([500, "hang", (429, {"Retry-After": "1"}), 200])
    gateway = make_gateway(sim.url, **ENV)
    run_id = _run(gateway, {"workflow_data": chain(0x101010), "webhook": receiver.url})

    body = _webhook_state(gateway, run_id, "delivered")
    got = receiver.received
    assert len(got) == 4 and len(receiver.delivered()) == 1
    assert all(r.verified for r in got)  # every attempt signed, verified by the library
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert got[3].at - got[2].at >= 0.95  # Retry-After: 1 was honoured
    message = got[-1].body
    assert message["type"] == "run.succeeded"
    assert message["data"]["run_id"] == run_id and message["data"]["status"] == "success"
    assert message["data"]["url"] == body["url"]
    assert body["webhook"]["attempts"] == 4 and body["webhook"]["last_status"] == 200
    assert body["webhook"]["delivered_at"] is not None


def test_delivered_after_a_kill_9_between_attempts(sim: Simulator, make_gateway, receivers):
    receiver = receivers(then=503)
    gateway = make_gateway(sim.url, **(ENV | {"WEBHOOK_RETRY_BASE": "2"}))
    run_id = _run(gateway, {"workflow_data": chain(0x202020), "webhook": receiver.url})
    until(lambda: receiver.received, timeout=30)
    gateway.kill9()  # the first attempt failed; the retry is due in 1-2 s
    receiver.then = 200
    gateway.restart()

    _webhook_state(gateway, run_id, "delivered")
    assert len(receiver.delivered()) == 1
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert all(r.verified for r in receiver.received)


def test_a_receiver_at_a_private_address_is_refused_and_recorded(
    sim: Simulator, make_gateway, receivers
):
    receiver = receivers()
    gateway = make_gateway(sim.url, WEBHOOK_SECRET=SECRET)  # no allow-list
    run_id = _run(gateway, {"workflow_data": chain(0x303030), "webhook": receiver.url})
    body = _webhook_state(gateway, run_id, "failed")
    assert body["status"] == "success"  # the run itself is fine
    assert body["webhook"]["attempts"] == 1
    assert "refused" in body["webhook"]["last_error"]
    assert receiver.received == []


def test_a_4xx_is_not_retried_and_can_be_sent_again(sim: Simulator, make_gateway, receivers):
    receiver = receivers([410])
    gateway = make_gateway(sim.url, **ENV)
    run_id = _run(gateway, {"workflow_data": chain(0x404040), "webhook": receiver.url})
    body = _webhook_state(gateway, run_id, "failed")
    time.sleep(1.0)  # several retry bases: nothing more arrives
    assert len(receiver.received) == 1 and body["webhook"]["last_status"] == 410

    again = gateway.post(f"/api/run/{run_id}/webhook")
    assert again.status_code == 202, again.text
    _webhook_state(gateway, run_id, "delivered")
    assert len(receiver.delivered()) == 1
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_default_url_events_filter_and_failed_runs(sim: Simulator, make_gateway, receivers):
    receiver = receivers()
    gateway = make_gateway(sim.url, **(ENV | {"WEBHOOK_URL": receiver.url}))
    ok = _run(gateway, {"workflow_data": chain(0x505050)})  # the default receiver
    quiet = _run(gateway, {"workflow_data": chain(0x606060), "webhook": None})
    only_failures = _run(
        gateway,
        {
            "workflow_data": chain(0x707070),
            "webhook": {"url": receiver.url, "events": ["run.failed"]},
        },
    )
    broken = chain(0x808080)
    broken["2"]["inputs"]["image"] = ["1", 5]  # no such output: ComfyUI refuses it
    failed = _run(gateway, {"workflow_data": broken, "webhook": {"events": ["run.failed"]}})

    _webhook_state(gateway, ok, "delivered")
    until(lambda: gateway.get(f"/api/status/{failed}").json()["status"] == "failed")
    _webhook_state(gateway, failed, "delivered")
    for run_id in (quiet, only_failures):
        until(lambda r=run_id: gateway.get(f"/api/status/{r}").json()["status"] == "success")
        assert "webhook" not in gateway.get(f"/api/status/{run_id}").json()
    kinds = {r.body["data"]["run_id"]: r.body["type"] for r in receiver.received}
    assert kinds == {ok: "run.succeeded", failed: "run.failed"}


@pytest.mark.parametrize(
    "webhook",
    [
        "ftp://example.com/x",
        "not a url",
        {"url": "https://example.com/h", "events": ["run.exploded"]},
        {"url": "https://example.com/h", "secret": "x"},
        "https://user:pw@example.com/h",
        12,
    ],
)
def test_a_malformed_webhook_is_a_400(shared_gateway, webhook) -> None:
    response = shared_gateway.post(
        "/api/run", json={"workflow_data": chain(0x909090), "webhook": webhook}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_type"] == "bad_request"


def test_resend_of_an_unfinished_or_unknown_run(shared_gateway) -> None:
    assert shared_gateway.post("/api/run/no-such-run/webhook").status_code == 404
    run_id = _run(shared_gateway, {"workflow_data": chain(0xA0A0A0)})
    until(lambda: shared_gateway.get(f"/api/status/{run_id}").json()["status"] == "success")
    response = shared_gateway.post(f"/api/run/{run_id}/webhook")
    assert response.status_code == 409 and response.json()["error_type"] == "conflict"
