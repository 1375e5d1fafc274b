"""The notebook app names no stylesheet outside the page: not at its first render and not
after an update (Panel re-sends an updated pane's stylesheets, named on its CDN)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ImportedStyleSheet, InlineStyleSheet
from panel.io import resources as panel_resources

from explorer.app.notebook import data_url, dist_file, show


def _sheets(doc: Document) -> list[ImportedStyleSheet | InlineStyleSheet]:
    return [s for m in doc.models for s in (getattr(m, "stylesheets", None) or [])
            if not isinstance(s, str)]  # fmt: skip


def test_no_stylesheet_leaves_the_page_before_or_after_an_update(tiny_store: Path) -> None:
    app = show(tiny_store)
    app._repr_mimebundle_()  # what a notebook does to display it
    ((root, _),) = app.__panel__()._models.values()
    doc = root.document
    assert doc is not None
    before = _sheets(doc)
    # An update: the selection's panes re-render their text (and with it their stylesheets).
    app.state.select(np.arange(5), "map")
    after = _sheets(doc)
    assert len(after) >= len(before) > 0
    imported = [s for s in after if isinstance(s, ImportedStyleSheet)]
    assert imported  # Panel's stylesheets are there, as data: URLs
    assert [s.url for s in imported if not s.url.startswith("data:")] == []
    assert not [s for s in after if isinstance(s, InlineStyleSheet) and "cdn." in s.css]
    # One model per file and document, shared by every component that names it.
    assert len({s.url for s in imported}) == len({id(s) for s in imported})


@pytest.mark.parametrize(
    ("url", "rel"),
    [
        (f"{panel_resources.CDN_DIST}css/loading.css", "css/loading.css"),
        (f"{panel_resources.CDN_DIST}bundled/theme/default.css?v=1.9", "bundled/theme/default.css"),
        ("static/extensions/panel/css/loading.css?v=1", "css/loading.css"),
        ("./prefix/static/extensions/panel/css/divider.css", "css/divider.css"),
        ("https://example.org/css/loading.css", None),  # not Panel's
        (f"{panel_resources.CDN_DIST}css/no-such-file.css", None),
        (f"{panel_resources.CDN_DIST}../../../../etc/passwd.css", None),  # outside dist/
        ("data:text/css;base64,AAAA", None),
    ],
)
def test_dist_file_names_only_panels_own_stylesheets(url: str, rel: str | None) -> None:
    expected = None if rel is None else (panel_resources.DIST_DIR / rel).resolve()
    assert dist_file(url) == expected


def test_data_url_embeds_pictures_and_leaves_other_references() -> None:
    loading = panel_resources.DIST_DIR / "css" / "loading.css"
    css = base64.b64decode(data_url(loading).split(",", 1)[1]).decode()
    assert "../assets/" not in css  # the spinners are in it
    assert 'url("data:image/svg+xml;base64,' in css
    awesome = panel_resources.DIST_DIR / "bundled" / "font-awesome" / "css" / "all.min.css"
    css = base64.b64decode(data_url(awesome).split(",", 1)[1]).decode()
    assert "data:font/woff2;base64," in css
    assert "fa-solid-900.eot" in css  # older formats stay relative: nothing is requested


def test_a_served_document_keeps_panels_own_cache() -> None:
    from panel.io.state import state

    from explorer.app.notebook import inline_stylesheets

    inline_stylesheets()
    inline_stylesheets()  # idempotent
    url = f"{panel_resources.CDN_DIST}css/loading.css"
    notebook, served = Document(), Document()
    session = object()  # a server session holds ``served`` (Bokeh keeps a weak reference)
    served._session_context = lambda: session  # type: ignore[assignment]
    assert url in state._stylesheets[notebook]  # answered inline, on demand
    assert state._stylesheets[notebook][url].url.startswith("data:text/css;base64,")
    assert served not in state._stylesheets  # Panel's own (plain) cache, made as it goes
    state._stylesheets[served] = {}
    assert url not in state._stylesheets[served]
