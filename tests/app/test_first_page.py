"""What keeps the first page quick and each map frame light (benchmarks/browser.py measures
the times; these check the mechanisms): the work done before the server listens, the
warm-up that waits for a quiet moment, overlay sources that send nothing when unchanged,
and status/legend text that changes one string rather than restyling a pane."""

from __future__ import annotations

import threading
import time

import panel as pn
import pytest
from bokeh.document import Document
from bokeh.document import models as document_models
from bokeh.models import ColumnDataSource

from explorer.app import background, markup, process
from explorer.app.mapfigure import update_source
from explorer.app.resources import StoreResources
from explorer.app.server import SpareSession
from explorer.app.shell import build_app


def test_prepare_first_page_builds_one_session_once(resources: StoreResources) -> None:
    built: list[StoreResources] = []
    process._prepared.discard(id(resources))
    process.prepare_first_page(resources, built.append)
    process.prepare_first_page(resources, built.append)
    assert built == [resources]
    assert ("index", resources.store.layouts[0]) in resources._cache  # built before listening


@pytest.fixture
def quick_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "FIRST_IMAGE_WAIT_S", 5.0)
    monkeypatch.setattr(background, "QUIET_S", 0.2)
    monkeypatch.setattr(background, "QUIET_WAIT_S", 5.0)
    monkeypatch.setattr(background, "_first_image", threading.Event())
    monkeypatch.setattr(background, "_last_frame", [0.0])


@pytest.mark.usefixtures("quick_waits")
def test_deferred_work_waits_for_the_first_image_then_a_pause() -> None:
    done = threading.Event()

    def deferred() -> None:
        background.wait_for_quiet()
        done.set()

    threading.Thread(target=deferred, daemon=True).start()
    assert not done.wait(0.4), "ran before any image was shown"
    background.frame_activity(shown=True)  # the first image reaches a browser
    # Frames keep coming: still waiting.
    for _ in range(4):
        time.sleep(0.1)
        background.frame_activity()
    assert not done.is_set(), "ran while frames were being drawn"
    assert done.wait(2.0), "never ran once the map was quiet"


@pytest.mark.usefixtures("quick_waits")
def test_deferred_work_runs_anyway_when_nobody_opens_the_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(background, "FIRST_IMAGE_WAIT_S", 0.3)
    t0 = time.monotonic()
    background.wait_for_quiet()
    assert time.monotonic() - t0 < 3.0


def _count_changes(source: ColumnDataSource) -> list[object]:
    doc = Document()
    doc.add_root(source)
    events: list[object] = []
    doc.on_change(events.append)
    return events


def test_update_source_sends_nothing_when_unchanged() -> None:
    source = ColumnDataSource({"x": [], "y": [], "text": []})
    events = _count_changes(source)
    update_source(source, {"x": [], "y": [], "text": []})
    assert events == []
    update_source(source, {"x": [1.0], "y": [2.0], "text": ["a"]})
    assert len(events) == 1
    update_source(source, {"x": [1.0], "y": [2.0], "text": ["a"]})
    assert len(events) == 1
    assert source.data["text"] == ["a"]


def test_live_html_changes_text_without_restyling_the_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live = markup.LiveHTML(markup.note("first"))
    template = pn.template.BootstrapTemplate(main=[pn.Column(live)])  # type: ignore[no-untyped-call]
    doc = Document()
    template.server_doc(doc)
    invalidated: list[None] = []
    original = document_models.DocumentModelManager.invalidate

    def counting(self: document_models.DocumentModelManager) -> None:
        invalidated.append(None)
        original(self)

    monkeypatch.setattr(document_models.DocumentModelManager, "invalidate", counting)
    for i in range(5):
        live.object = markup.note(f"frame {i} <b>escaped</b>")
    assert invalidated == []
    assert "frame 4 &lt;b&gt;escaped&lt;/b&gt;" in live.div.text
    assert live.object == live.div.text


def test_map_status_and_legend_are_live_html_unless_in_a_notebook(
    resources: StoreResources,
) -> None:
    markup.use_live_html(True)  # as `serve` sets it (a notebook test may have run before)
    m = build_app(resources).map
    assert isinstance(m.legend, markup.LiveHTML)
    assert "points in view" in m._status.object
    assert m.legend.object  # the colour key of the default colouring
    markup.use_live_html(False)  # what explorer.show does in a notebook's kernel
    try:
        assert isinstance(build_app(resources).map.legend, pn.pane.HTML)
    finally:
        markup.use_live_html(True)


@pytest.mark.usefixtures("quick_waits")
def test_spare_session_is_built_ahead_and_replaced_when_quiet(resources: StoreResources) -> None:
    spare = SpareSession(resources)
    spare.fill()
    ahead = spare._app
    assert ahead is not None
    assert spare.take() is ahead  # the visitor gets the session built ahead
    time.sleep(0.5)
    assert spare._app is None, "replaced before any image was shown"
    background.frame_activity(shown=True)
    deadline = time.monotonic() + 10
    while spare._app is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spare._app is not None
    assert spare._app is not ahead
    assert spare.take() is not ahead
