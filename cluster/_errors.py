"""Errors of the cluster package: one root, each also the builtin that says what happened."""

from __future__ import annotations

__all__ = ["ClusterDependencyError", "ClusterError", "ClusterSpecError", "ClusterStartupError"]


class ClusterError(Exception):
    """Root of the errors raised while getting a dask cluster."""


class ClusterSpecError(ClusterError, ValueError):
    """A cluster YAML spec is malformed (the message names the file and key)."""


class ClusterDependencyError(ClusterError, ImportError):
    """A cluster kind needs a package that is not installed (the message says which)."""


class ClusterStartupError(ClusterError, TimeoutError):
    """No worker joined the cluster in time; the message carries the job-submission error."""
