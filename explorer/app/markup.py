"""Small HTML fragments for the panes, with every piece of metadata escaped.

Metadata is untrusted input (a label may be ``<script>…</script>`` or ``<img onerror=…>``):
everything from the store goes through ``html.escape`` here, and only these builders make
HTML, so the rule is kept in one place. Data URIs are produced by us (base64 PNG), and
colours by the palette, so they go into attributes as they are after a format check.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import panel as pn
from bokeh.models import Div, InlineStyleSheet
from panel.viewable import Viewer

_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
_URI_RE = re.compile(r"^data:image/png;base64,[A-Za-z0-9+/=]*$")

# Given to every HTML pane as a stylesheet (its shadow root), so fragments stay small.
STYLESHEET = """
.ex-card { font-size: 13px; line-height: 1.35; }
.ex-card table { border-collapse: collapse; width: 100%; }
.ex-card td { padding: 1px 4px; vertical-align: top; overflow-wrap: anywhere; }
.ex-card td.k { color: #666; white-space: nowrap; }
.ex-thumb { image-rendering: pixelated; border: 1px solid #ddd; background: #fff; }
.ex-grid { display: flex; flex-wrap: wrap; gap: 3px; }
.ex-grid .ex-snip { font-size: 11px; width: 150px; max-height: 48px; overflow: hidden;
  border: 1px solid #eee; padding: 2px; white-space: pre-wrap; }
.ex-bar { display: inline-block; height: 8px; background: #4c78a8; vertical-align: middle; }
.ex-bar.all { background: #bbb; }
.ex-muted { color: #777; }
.ex-sw { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin-right: 5px; vertical-align: middle; }
"""


def one_line(text: object, limit: int, *, strip: bool = False) -> str:
    """``text`` as one line of at most ``limit`` characters, for canvas text and titles:
    control characters (a label's newlines, terminal escapes) become spaces (then trimmed
    from the ends with ``strip``), a cut ends in …."""
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text))
    flat = flat.strip() if strip else flat
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


def html_pane(text: str = "", **params: Any) -> pn.pane.HTML:
    """An HTML pane styled for these fragments (give it only what these builders make)."""
    params.setdefault("sizing_mode", "stretch_width")
    return pn.pane.HTML(text, stylesheets=[STYLESHEET], **params)  # type: ignore[no-untyped-call]


class LiveHTML(Viewer):
    """An HTML fragment changed on every map frame (status line, legend): a Bokeh ``Div``.

    Each new ``object`` of a Panel HTML pane inside the page template re-sets its
    stylesheets, the design's among them as new models; Bokeh then walks every model of
    the document again (~570) and the browser restyles the pane: 20-70 ms of the server's
    event loop per frame at 10M points on 2 cores (py-spy), as long as the render itself.
    Setting a ``Div``'s text sends one string. Give it only what these builders make.
    """

    def __init__(self, text: str = "", **params: Any) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        params.setdefault("sizing_mode", "stretch_width")
        sheet = InlineStyleSheet(css=STYLESHEET)
        self.div = Div(text=text, disable_math=True, stylesheets=[sheet], **params)
        # The pane's too: Panel's design sets the wrapped model's stylesheets to its own
        # plus the pane's, which dropped the Div's (the legend lost its swatches).
        self._pane = pn.pane.Bokeh(self.div, stylesheets=[STYLESHEET], **params)  # type: ignore[no-untyped-call]

    @property
    def object(self) -> str:
        """The HTML shown."""
        return str(self.div.text)

    @object.setter
    def object(self, text: str) -> None:
        if text != self.div.text:
            self.div.text = text

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane


_live = [True]  # False in a notebook's kernel (explorer.app.notebook.show)


def use_live_html(live: bool) -> None:
    """Whether ``live_html`` makes ``LiveHTML`` (served apps, the default) or HTML panes
    (a notebook: a ``Div`` changed in the kernel did not reach the page, while Panel
    sends its own panes' changes)."""
    _live[0] = live


def live_html(text: str = "", **params: Any) -> LiveHTML | pn.pane.HTML:
    """A fragment changed on every map frame: ``LiveHTML``, or in a notebook an HTML pane."""
    return LiveHTML(text, **params) if _live[0] else html_pane(text, **params)


def esc(value: object) -> str:
    """Any value as HTML-escaped text."""
    return html.escape(str(value), quote=True)


def _color(value: str) -> str:
    return value if _COLOR_RE.match(value) else "#999999"


def img_tag(uri: str | None, size: int, title: str = "") -> str:
    """An ``<img>`` of a thumbnail data URI (empty string when there is none)."""
    if uri is None or not _URI_RE.match(uri):
        return ""
    return (
        f'<img class="ex-thumb" src="{uri}" width="{int(size)}" height="{int(size)}" '
        f'title="{esc(title)}" alt="{esc(title)}">'
    )


def legend(entries: Iterable[tuple[str, str, int]], title: str) -> str:
    """A categorical legend: swatch, label and count per entry (label, colour, count)."""
    rows = "".join(
        f'<div><span class="ex-sw" style="background:{_color(c)}"></span>{esc(label)} '
        f'<span class="ex-muted">{count:,}</span></div>'
        for label, c, count in entries
    )
    return f'<div class="ex-card"><b>{esc(title)}</b>{rows}</div>'


def note(text: str) -> str:
    """A short muted line of text."""
    return f'<div class="ex-card ex-muted">{esc(text)}</div>'


@dataclass(frozen=True)
class PointView:
    """What the point card shows about one point."""

    heading: str
    record: dict[str, str]
    thumbnail: str | None = None
    text: str | None = None


def point_card(point: PointView, neighbours: Sequence[tuple[str, str | None, float]] = ()) -> str:
    """The hover/pinned card: heading, thumbnail or text, metadata table, neighbours.

    neighbours : (id, thumbnail URI or None, distance) of the pinned point's kNN.
    """
    parts = ['<div class="ex-card">', f"<b>{esc(point.heading)}</b><br>"]
    if point.thumbnail:
        parts.append(img_tag(point.thumbnail, 96))
    if point.text:
        parts.append(f'<div class="ex-snip">{esc(point.text)}</div>')
    rows = "".join(
        f'<tr><td class="k">{esc(k)}</td><td>{esc(v)}</td></tr>' for k, v in point.record.items()
    )
    parts.append(f"<table>{rows}</table>")
    if neighbours:
        parts.append(f"<div><b>{len(neighbours)} nearest neighbours</b> (high-D distance)</div>")
        items = []
        for name, uri, dist in neighbours:
            pic = img_tag(uri, 32, f"{name} ({dist:.3g})")
            items.append(pic or f'<span class="ex-snip">{esc(name)} ({dist:.3g})</span>')
        parts.append(f'<div class="ex-grid">{"".join(items)}</div>')
    parts.append("</div>")
    return "".join(parts)


def value_table(column: str, rows: Sequence[tuple[str, int, float, float]], n_selected: int) -> str:
    """Top values of a column: label, count in selection, share there, share overall."""
    body = "".join(
        f"<tr><td>{esc(label)}</td><td>{count:,}</td>"
        f'<td><span class="ex-bar" style="width:{int(60 * sel)}px"></span> {sel:.0%}</td>'
        f'<td><span class="ex-bar all" style="width:{int(60 * allp)}px"></span> {allp:.0%}</td>'
        "</tr>"
        for label, count, sel, allp in rows
    )
    head = (
        f'<tr class="ex-muted"><td>{esc(column)}</td><td>n</td>'
        f"<td>in selection ({n_selected:,})</td><td>overall</td></tr>"
    )
    return f'<table style="margin-bottom:6px">{head}{body}</table>'


def median_table(rows: Sequence[tuple[str, float, float]], n_selected: int) -> str:
    """Numeric columns and scores: median in the selection against median overall."""
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{esc(name)}</td><td>{sel:.4g}</td><td>{allv:.4g}</td></tr>"
        for name, sel, allv in rows
    )
    head = (
        f'<tr class="ex-muted"><td>numeric</td><td>median in selection ({n_selected:,})</td>'
        "<td>overall</td></tr>"
    )
    return f'<table style="margin-bottom:6px">{head}{body}</table>'


def card(inner_html: Sequence[str]) -> str:
    """Wrap already-escaped fragments in the card style."""
    return f'<div class="ex-card">{"".join(inner_html)}</div>'


def grid(items: Sequence[tuple[str, str | None, str | None]], size: int = 48) -> str:
    """A grid of thumbnails (or text snippets): (id, thumbnail URI, text) per point."""
    cells = []
    for name, uri, text in items:
        if uri:
            cells.append(img_tag(uri, size, name))
        else:
            snippet = text if text is not None else name
            cells.append(f'<div class="ex-snip" title="{esc(name)}">{esc(snippet)}</div>')
    return f'<div class="ex-grid">{"".join(cells)}</div>'
