"""Readers and validation: user files in, a validated Dataset out."""

from __future__ import annotations
