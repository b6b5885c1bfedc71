#!/usr/bin/env bash
# The README's demo: simulate a small camera, ingest it, characterize every detector on a
# local dask cluster, print the report, and write pictures a person can look at.
#
# Usage: scripts/demo.sh [REPO]   (default: demo_repo; removed first if it exists)
set -euo pipefail
repo="${1:-demo_repo}"
here="$(cd "$(dirname "$0")/.." && pwd)"
rm -rf "$repo"

echo "== 1. simulate 2 visits x 9 detectors (1024x1024) with truth, and ingest them"
butler simulate "$repo" --detectors 9 --size 1024 --visits 2 --png "$repo/pictures/raw_detector0.png"

echo; echo "== 2. what is in the repository"
butler query-collections "$repo"
butler query-dataset-types "$repo"
butler query-data-ids "$repo" visit detector --where "visit = 100 AND detector IN (0..3)"

echo; echo "== 3. characterize every detector on a local dask cluster of 2 worker processes"
set +e
pipetask --log-level WARNING run -b "$repo" -p "$here/pipelines.yaml" -i SimCam/raw/all -o demo/characterize \
    -j 2 -c characterizeImage:debugStages=[psf,measure] --no-progress
status=$?
set -e
echo "pipetask run exit code: $status"

echo; echo "== 4. the report"
pipetask --log-level WARNING report -b "$repo" demo/characterize --full-output-filename "$repo/report.yaml"

echo; echo "== 5. results"
butler query-datasets "$repo" icSrc --collections demo/characterize --where "visit = 100" | head -20
python - "$repo" <<'PY'
import sys
from butler import Butler
butler = Butler(sys.argv[1], collections="demo/characterize")
for ref in butler.query_datasets("icExp", where="visit = 100")[:3]:
    exp = butler.get(ref)
    cat = butler.get("icSrc", ref.data_id)
    center = exp.bbox.center
    print(f"detector {ref.data_id['detector']}: {len(cat)} sources, "
          f"{int(cat['calib_psf_used'].sum())} PSF stars, PSF FWHM at centre {exp.psf.fwhm(center):.3f} px")
PY
echo; echo "pictures (open them):"
find "$repo" -name "*.png" | sort | head -20
exit "$status"
