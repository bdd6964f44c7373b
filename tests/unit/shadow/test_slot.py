"""The shadow slot follows the store's ``shadow`` link on a reload: new version in, old one out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.observers import ShadowConfig
from agent.model.store import ModelStore
from agent.shadow.runner import ShadowRunner
from agent.shadow.slot import ShadowSlot, shadow_path
from agent.testing import RecordingSink
from tests.unit.shadow.test_runner import fixture_package, load


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    """fixture 0.1.0 current, 0.2.0 installed beside it."""
    s = ModelStore(tmp_path / "store")
    for version in ("0.1.0", "0.2.0"):
        s.install(fixture_package(tmp_path / version, version))
    s.activate("fixture", "0.1.0")
    return s


@pytest.fixture
def slot(store: ModelStore) -> Iterator[ShadowSlot]:
    active = store.root / "fixture" / "current"
    sink = RecordingSink()

    def start(path: Path) -> ShadowRunner:
        return ShadowRunner(
            ShadowConfig(max_latency_ms=10_000.0), path=path, load=load, busy=lambda: False,
            budget_ms=lambda: 50.0, publish=lambda doc: None, emit=sink,
        )  # fmt: skip

    made = ShadowSlot(lambda: shadow_path(None, active), start)
    yield made
    made.close(5.0)


def running_version(slot: ShadowSlot) -> str:
    assert slot.runner is not None and slot.wait_idle(30.0)
    health = slot.health()
    assert health is not None and health["state"] == "running", health
    return str(health["model"]["version"])


def test_no_shadow_link_means_no_shadow_until_one_is_set_and_reloaded(
    store: ModelStore, slot: ShadowSlot
) -> None:
    assert slot.runner is None and slot.health() is None
    with pytest.raises(ValueError, match="no shadow model"):
        slot.promotable()
    store.set_shadow("fixture", "0.2.0")
    slot.tick()
    assert slot.runner is None  # nothing happens without a reload (SIGHUP)
    slot.reload()
    slot.tick()
    assert running_version(slot) == "0.2.0"


def test_a_new_shadow_version_replaces_the_old_runner_and_clearing_stops_it(
    store: ModelStore, slot: ShadowSlot
) -> None:
    store.set_shadow("fixture", "0.2.0")
    slot.reload()
    slot.tick()
    first = slot.runner
    assert running_version(slot) == "0.2.0"
    slot.reload()
    slot.tick()
    assert slot.runner is first  # the same package: kept, not reloaded
    store.set_shadow("fixture", "0.1.0")
    slot.reload()
    slot.tick()
    assert slot.runner is not first and first is not None and first.state == "closed"
    assert running_version(slot) == "0.1.0"
    second = slot.runner
    store.set_shadow("fixture", None)
    slot.reload()
    slot.tick()
    assert slot.runner is None and slot.health() is None
    assert second is not None and second.state == "closed"


def test_model_shadow_in_the_config_wins_over_the_store_link(store: ModelStore, tmp_path: Path) -> None:
    active = store.root / "fixture" / "current"
    store.set_shadow("fixture", "0.2.0")
    assert shadow_path(None, active) == store.root / "fixture" / "shadow"
    assert shadow_path(tmp_path / "other", active) == tmp_path / "other"
    assert shadow_path(None, tmp_path / "0.1.0") is None  # not a store: only model.shadow names one
