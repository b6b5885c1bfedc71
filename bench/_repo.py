"""The repositories the benchmarks run on: one instrument, 189 detectors, N visits."""

from __future__ import annotations

from typing import Any

__all__ = ["N_DETECTORS", "add_dimension_records"]

#: Detectors of the benchmark camera (LSSTCam's science detectors).
N_DETECTORS = 189


def add_dimension_records(butler: Any, *, instrument: str, n_visits: int) -> None:
    """Insert the instrument, one band and filter, 189 detectors and ``n_visits`` visits."""
    reg = butler.registry
    reg.insert_dimension_records("instrument", [{"name": instrument}])
    reg.insert_dimension_records("band", [{"name": "r"}])
    reg.insert_dimension_records(
        "physical_filter", [{"instrument": instrument, "name": "r_57", "band": "r"}]
    )
    reg.insert_dimension_records(
        "detector", [{"instrument": instrument, "id": d} for d in range(N_DETECTORS)]
    )
    reg.insert_dimension_records(
        "visit",
        [{"instrument": instrument, "id": v, "physical_filter": "r_57"} for v in range(n_visits)],
    )
