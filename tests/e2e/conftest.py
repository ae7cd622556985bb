"""Simulator and gateway processes for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .browser import CALL_REPORT
from .harness import Gateway, Simulator

VERSIONS = ["0.3.64", "0.27"]


@pytest.fixture(scope="module", params=VERSIONS)
def shared_sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """One simulator per module and ComfyUI version, for tests that leave it as they found it."""
    sim = Simulator(request.param).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def shared_gateway(shared_sim: Simulator) -> Iterator[Gateway]:
    """The gateway in front of `shared_sim`."""
    gateway = Gateway(shared_sim.url).start()
    yield gateway
    gateway.stop()


@pytest.fixture(params=VERSIONS)
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """A fresh simulator for a test that breaks it on purpose."""
    simulator = Simulator(request.param).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def make_gateway() -> Iterator:
    """Start gateways with particular settings; all are stopped after the test."""
    started: list[Gateway] = []

    def start(comfy_url: str, workers: int = 1, **env: str) -> Gateway:
        gateway = Gateway(comfy_url, env=env, workers=workers).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    """Keep each test's outcome where its fixtures can read it (screenshots on failure)."""
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report
