"""Run the benchmarks: ``python -m bench [NAME ...]`` (default all; names in `BENCHMARKS`)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "butler": "bench.butler_bench",
    "graph": "bench.graph_bench",
    "execution": "bench.execution_bench",
    "characterize": "bench.characterize_bench",
    "backends": "bench.backends_bench",
    "bright_stars": "bench.bright_stars_bench",
    "extended_psf": "bench.extended_psf_bench",
    "startup": "bench.startup_bench",
    "bulk": "bench.bulk_bench",
    "psf_wings": "bench.psf_wings_bench",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
        return 2
    for name in names:
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ModuleNotFoundError as err:
            print(f"[{name}] not available: {err}")
            continue
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
