"""Fixtures for the app tests: shared store resources and a fresh app per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import panel as pn
import pytest

from explorer.app.resources import StoreResources
from explorer.app.shell import ExplorerApp, build_app
from explorer.store.reader import Store


@pytest.fixture(autouse=True)
def _reset_panel_state() -> Iterator[None]:
    """Panel keeps global state (documents, locations, caches): clear it after each test."""
    yield
    pn.state.reset()


@pytest.fixture(scope="session")
def resources(tiny_store: Path) -> StoreResources:
    """One StoreResources over the tiny store, shared like a server process shares it."""
    return StoreResources(Store(tiny_store))


@pytest.fixture
def app(resources: StoreResources) -> ExplorerApp:
    """A new session (state + panes) over the shared resources."""
    return build_app(resources)
