#!/usr/bin/env bash
# The README's demo: simulate a small camera, ingest it, characterize every detector and cut
# its bright-star stamps on a local dask cluster, print the report, and write pictures a person
# can look at.
#
# Usage: scripts/demo.sh [REPO]   (default: demo_repo; removed first if it exists)
set -euo pipefail
repo="${1:-demo_repo}"
here="$(cd "$(dirname "$0")/.." && pwd)"
rm -rf "$repo"

echo "== 1. simulate 2 visits x 9 detectors (1024x1024) with truth, and ingest them"
echo "      (every star with the same extended profile; extra bright stars for the stamps)"
butler simulate "$repo" --detectors 9 --size 1024 --visits 2 --extended-halos \
    --bright-star-density 300 --png "$repo/pictures/raw_detector0.png"

echo; echo "== 2. what is in the repository"
butler query-collections "$repo"
butler query-dataset-types "$repo"
butler query-data-ids "$repo" visit detector --where "visit = 100 AND detector IN (0..3)"

echo; echo "== 3. characterize every detector and cut its bright-star stamps (chained, one worker"
echo "      call per detector) on a local dask cluster of 2 worker processes"
set +e
pipetask --log-level WARNING run -b "$repo" -p "$here/pipelines.yaml" \
    -i SimCam/raw/all,SimCam/calib,refcats -o demo/characterize \
    -j 2 -c characterizeImage:debugStages=[psf,measure] -c processBrightStars:debugStages=[stamps] \
    --no-progress
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
for ref in butler.query_datasets("brightStarStamps", where="visit = 100")[:3]:
    stamps = butler.get(ref)
    print(f"detector {ref.data_id['detector']}: {len(stamps)} bright-star stamps "
          f"(G {min(stamps.getMagnitudes()):.1f}-{max(stamps.getMagnitudes()):.1f}), "
          f"nb90Rots={stamps.nb90Rots}")
PY
first=$(butler query-datasets "$repo" brightStarStamps --collections demo/characterize \
    --where "visit = 100" --format csv | sed -n 2p)
if [ -n "$first" ]; then
    detector=$(python -c "import sys; print(sys.argv[1].split(',')[4])" "$first")
    butler stamp-mosaic "$repo" "$repo/pictures/stamps_visit100_detector$detector.png" \
        --collections demo/characterize --visit 100 --detector "$detector"
fi
echo; echo "pictures (open them):"
find "$repo" -name "*.png" | sort
exit "$status"
