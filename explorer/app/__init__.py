"""The Panel app: one shared state per session, one module per pane."""

from __future__ import annotations
