"""Errors a user can act on.

Library code raises these; only ``explorer.cli`` turns them into one line on stderr
(datasette's pattern). Each message says what is wrong, where, and what to do.
"""

from __future__ import annotations


class ExplorerError(Exception):
    """Base class: an error whose message is meant for the user, not a bug."""


class InputError(ExplorerError):
    """The user's input files are missing, unreadable or invalid."""


class ConfigError(ExplorerError):
    """A build or serve option is out of bounds or inconsistent."""


class StoreError(ExplorerError):
    """A projection store cannot be read or written."""


class StoreIncompleteError(StoreError):
    """The store has no valid manifest: a build did not finish."""


class StoreVersionError(StoreError):
    """The store was written by a newer format than this version reads."""


class StoreCorruptError(StoreError):
    """A file in the store is missing, truncated or does not match the manifest."""


class StoreLockedError(StoreError):
    """Another process is writing the store (a build, or a selection being saved)."""


class SelectionExistsError(StoreError):
    """A saved selection of that name exists and overwriting it was not asked for."""


class StaleSelectionError(StoreError):
    """A saved selection was made on other data (the store was rebuilt from other input)."""


class StageMissingError(StoreError):
    """The store lacks a stage that the caller needs."""


class QueryError(ExplorerError):
    """A search pattern or SQL filter cannot be run as written (bad syntax, refused)."""
