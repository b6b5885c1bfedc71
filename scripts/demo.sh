#!/usr/bin/env bash
# The README's demo: simulate a small camera, ingest it, characterize every detector, cut its
# bright-star stamps, stack them into the band's extended PSF and subtract it, on a local dask
# cluster; print the report, and write pictures a person can look at.
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
echo "      call per detector) on 2 local worker processes (-j 2)"
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
echo; echo "== 6. the band's extended PSF (stacked stamps) and a bright star before/after subtraction"
python - "$repo" <<'PY' || true
import sys
import numpy as np
from butler import Butler
from imaging.extended_psf_pictures import (
    write_model_picture, write_profile_picture, write_subtraction_picture)
repo = sys.argv[1]
butler = Butler(repo, collections="demo/characterize")
for ref in butler.query_datasets("extended_psf"):
    psf = butler.get(ref)
    band = ref.data_id["band"]
    print(f"band {band}: {psf}, {[(n, m.n_stamps) for n, m in psf.regions.items()]} stamps")
    print("  ", write_model_picture(psf, f"{repo}/pictures/extended_psf_{band}.png"))
    print("  ", write_profile_picture(psf, f"{repo}/pictures/extended_psf_profile_{band}.png"))
refs = butler.query_datasets("brightStarSubtracted_calexp", where="visit = 100")
if refs:
    data_id = refs[0].data_id
    stamps = butler.get("brightStarStamps", data_id)
    star = stamps[int(np.argmin(stamps.getMagnitudes()))]
    ny, nx = star.stamp_im.image.shape
    x, y = star.archive_element.apply_inverse(star.position[0] + nx // 2, star.position[1] + ny // 2)
    print("  ", write_subtraction_picture(
        butler.get("icExp", data_id).image, butler.get(refs[0]).image, (float(x), float(y)),
        f"{repo}/pictures/subtracted_visit100_detector{data_id['detector']}.png",
        title=f"G = {star.gaiaGMag:.1f} star {star.gaiaId}, before/after subtraction"))
PY
echo; echo "pictures (open them):"
find "$repo" -name "*.png" | sort
exit "$status"
