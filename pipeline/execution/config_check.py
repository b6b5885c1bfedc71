"""Refusing to mix outputs of different configs in one run.

A run records each task's config as the ``<label>_config`` dataset. Re-running
into that run with a different config would silently keep outputs made with
the old one (LSST's ``--skip-existing`` does exactly that); here the run is
refused with a field-by-field diff, unless the user asks to clobber.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import PipelineError

__all__ = ["ConfigMismatchError", "check_run_configs", "config_differences"]


class ConfigMismatchError(PipelineError, ValueError):
    """The output run already holds a different config for a task."""


def config_differences(old: Any, new: Any) -> list[str]:
    """Return ``field: old != new`` lines (empty when the configs are equal)."""
    if type(old) is not type(new):
        return [f"<config class>: {type(old).__name__} != {type(new).__name__}"]
    return list(old.compare(new))


def check_run_configs(butler: Any, run: str, configs: Mapping[str, Any]) -> dict[str, list[str]]:
    """Compare task configs with the ``<label>_config`` datasets stored in ``run``.

    Parameters
    ----------
    butler : `butler.Butler`
        The full butler.
    run : `str`
        Output RUN collection.
    configs : mapping of `str` to `Config`
        Task label to the config about to be used.

    Returns
    -------
    differences : `dict` [`str`, `list` [`str`]]
        Per label whose stored config differs, the differing fields.
    """
    registry = butler.registry
    try:
        registry.get_collection_type(run)
    except LookupError:
        return {}
    result = {}
    for label, config in configs.items():
        try:
            ref = registry.find_dataset(f"{label}_config", {}, collections=[run])
        except LookupError:
            continue
        if ref is None:
            continue
        diffs = config_differences(butler.get(ref), config)
        if diffs:
            result[label] = diffs
    return result


def format_differences(run: str, differences: Mapping[str, list[str]]) -> str:
    """Describe config differences for an error message."""
    lines = [f"run {run!r} was made with different configs:"]
    for label, diffs in differences.items():
        lines.append(f"  {label}:")
        lines.extend(f"    {d}" for d in diffs)
    lines.append("use another output run, or --clobber-outputs to replace the outputs")
    return "\n".join(lines)
