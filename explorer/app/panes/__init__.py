"""One Viewer per pane; panes never import each other."""

from __future__ import annotations
