"""The app in a notebook: ``show(path)``, with every stylesheet carried in the page.

No network at run time holds in a notebook too. ``pn.extension(inline=True)`` puts
Panel's JavaScript in the page and inlines the stylesheets of the first render, but a
component updated later (an HTML pane whose text changes, a tab added) is sent again with
its stylesheets named on ``cdn.holoviz.org`` (Panel 1.9: ``Pane._update`` re-sends every
property, patched against the CDN when the document has no server). Offline those fail
and the page loses its styling; online a third party is told of every session.

Panel resolves each document's stylesheets through one cache per document, keyed by URL
(``state._stylesheets``: components, designs and layouts all consult it). For documents
outside a server (notebooks, saved files) ``inline_stylesheets()`` puts a cache there that
answers every URL of a file in Panel's ``dist`` folder with one shared copy of the file
as a ``data:`` URL (its small images and ``woff2`` fonts embedded the same way), so no
render and no later update can name a CDN.
"""

from __future__ import annotations

import base64
import mimetypes
import re
import urllib.parse
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import panel as pn
from bokeh.document import Document
from bokeh.models import ImportedStyleSheet
from panel.io import resources as panel_resources
from panel.io.state import state

from explorer.app import markup

if TYPE_CHECKING:
    from explorer.app.shell import ExplorerApp

# Files a stylesheet refers to that are embedded in it: pictures and the one font format
# every browser we support reads first. (Font Awesome also lists eot/ttf/woff copies,
# 0.9 MB more; a browser that reads woff2 never asks for them.)
EMBEDDED = {".svg": "image/svg+xml", ".png": "image/png", ".gif": "image/gif",
            ".woff2": "font/woff2"}  # fmt: skip
MAX_EMBEDDED = 256 * 1024
_URL_REF = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""")


def show(path: str | Path) -> ExplorerApp:
    """The app over the store at ``path``, for a notebook: display it, read ``.selection``.

    Loads Panel's notebook support with its JavaScript in the page (and Tabulator, which
    the slice table needs: a notebook only loads what ``pn.extension`` names), and keeps
    every stylesheet in the page (see the module's docstring).
    """
    from explorer.app.shell import build_app

    pn.extension("tabulator", notifications=True, inline=True)  # type: ignore[no-untyped-call]
    inline_stylesheets()
    markup.use_live_html(False)
    app = build_app(path)
    app.resources.load_table_soon()  # for hover and export (a server's warm-up reads it)
    return app


def inline_stylesheets() -> None:
    """Serve Panel's stylesheets inline in every document outside a server (idempotent)."""
    current = state._stylesheets
    if not isinstance(current, _InlineStylesheets):
        type(state)._stylesheets = _InlineStylesheets(current)  # a class variable of Panel's


class _InlineStylesheets(WeakKeyDictionary[Document, dict[str, ImportedStyleSheet]]):
    """Panel's per-document stylesheet caches, with an inlining cache for every document
    that no server session holds."""

    def _adopt(self, doc: object) -> None:
        if (isinstance(doc, Document) and doc.session_context is None
                and not isinstance(super().get(doc), _InlineCss)):  # fmt: skip
            self[doc] = _InlineCss(super().get(doc) or {})

    def __contains__(self, doc: object) -> bool:
        self._adopt(doc)
        return super().__contains__(doc)

    def __getitem__(self, doc: Document) -> dict[str, ImportedStyleSheet]:
        self._adopt(doc)
        return super().__getitem__(doc)

    def get(self, doc: Document, default: Any = None) -> Any:  # type: ignore[override]
        self._adopt(doc)
        return super().get(doc, default)


class _InlineCss(dict[str, ImportedStyleSheet]):
    """One document's stylesheets by URL: a URL of a file of Panel's ``dist`` folder (on
    the CDN or on a server's static route) maps to that file's one inline copy."""

    def __init__(self, known: dict[str, ImportedStyleSheet]) -> None:
        # What the document cached before (named on a CDN) is resolved again, inline.
        super().__init__({url: s for url, s in known.items() if dist_file(url) is None})
        self._by_file: dict[Path, ImportedStyleSheet] = {}

    def __bool__(self) -> bool:  # Panel skips an empty cache (``if cache and ...``)
        return True

    def __contains__(self, url: object) -> bool:
        return super().__contains__(url) or (isinstance(url, str) and dist_file(url) is not None)

    def __missing__(self, url: str) -> ImportedStyleSheet:
        path = dist_file(url)
        if path is None:
            raise KeyError(url)
        # One model per file and document, whatever form of its URL a component names.
        if path not in self._by_file:
            self._by_file[path] = ImportedStyleSheet(url=data_url(path))
        self[url] = sheet = self._by_file[path]
        return sheet


@cache  # a few dozen URLs, asked on every update of every component
def dist_file(url: str) -> Path | None:
    """The stylesheet of Panel's ``dist`` folder that ``url`` names (on the CDN, or on a
    server's ``static/extensions/panel/`` route, with or without a query), if it is one."""
    if url.startswith("data:"):
        return None
    path = url.split("?")[0].split("#")[0]
    if path.startswith(panel_resources.CDN_DIST):
        rel = path[len(panel_resources.CDN_DIST) :]
    elif panel_resources.LOCAL_DIST in path:
        rel = path.split(panel_resources.LOCAL_DIST, 1)[1]
    else:
        return None
    dist = panel_resources.DIST_DIR.resolve()
    file = (dist / urllib.parse.unquote(rel)).resolve()
    if file.suffix == ".css" and file.is_relative_to(dist) and file.is_file():
        return file
    return None


@cache
def data_url(path: Path) -> str:
    """The stylesheet at ``path`` as a ``data:`` URL, its small pictures and fonts in it."""
    css = path.read_text(encoding="utf-8")
    css = _URL_REF.sub(lambda m: _embedded(path.parent, m), css)
    return "data:text/css;base64," + base64.b64encode(css.encode()).decode("ascii")


def _embedded(folder: Path, ref: re.Match[str]) -> str:
    target = ref.group(2).strip()
    if ":" in target or target.startswith(("/", "#")):  # data:, http:, absolute: as is
        return ref.group(0)
    file = (folder / target.split("?")[0].split("#")[0]).resolve()
    mime = EMBEDDED.get(file.suffix.lower()) or mimetypes.guess_type(file.name)[0]
    if (file.suffix.lower() not in EMBEDDED or not file.is_file()
            or file.stat().st_size > MAX_EMBEDDED or mime is None):  # fmt: skip
        # Left relative: against a data: URL it names nothing, so nothing is requested.
        return ref.group(0)
    encoded = base64.b64encode(file.read_bytes()).decode("ascii")
    return f'url("data:{mime};base64,{encoded}")'
