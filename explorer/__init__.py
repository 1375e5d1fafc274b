"""An interactive explorer for embedding datasets.

``open_store(path)`` reads a projection store built by ``explorer build``;
``show(path)`` returns the Panel app for a notebook (imported lazily: the build side
never pays for Panel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from explorer.version import __version__

if TYPE_CHECKING:
    from explorer.store.reader import Store


def open_store(path: str) -> Store:
    """Open a finished projection store read-only (arrays memory-mapped)."""
    from explorer.store.reader import Store

    return Store(path)


def show(path: str) -> Any:
    """Return the explorer app over the store at ``path``, for display in a notebook."""
    from explorer.app.notebook import show as _show

    return _show(path)


__all__ = ["__version__", "open_store", "show"]
