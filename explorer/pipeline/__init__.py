"""Orders the build stages, shows progress, resumes after a crash."""

from __future__ import annotations
