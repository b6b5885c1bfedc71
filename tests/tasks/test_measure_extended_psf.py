"""MeasureExtendedPsfTask: a (band, instrument) gather run through the quantum graph and the
executor, regions, the lost-detector warning, and bands without stamps."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from butler import Butler, DatasetType
from imaging.extended_psf import ExtendedPsf
from imaging.extended_psf_profile import azimuthal_profile
from pipeline import NoWorkFound, Pipeline
from pipeline.execution.run import execute_graph
from pipeline.graph.builder import build_quantum_graph
from tasks.measure_extended_psf import MeasureExtendedPsfConfig, MeasureExtendedPsfTask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imaging"))
from _extended_psf_factory import annulus_mean, truth_image  # noqa: E402

VISIT_BANDS = {1: "r", 2: "r", 3: "g", 4: "i"}
N_DETECTORS = 4

PIPELINE = """
description: stamps, then one extended PSF per band
tasks:
  makeStamps:
    class: extended_psf_tasks.MakeStamps
    config:
      noWorkVisits: [3]
  measureExtendedPsf:
    class: tasks.measure_extended_psf.MeasureExtendedPsfTask
    config:
      stack_bright_stars.subregion_size: [20, 41]
      detectors_focal_plane_regions: {0: center, 1: center, 2: edge}
"""


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    Butler.create(root)
    butler = Butler(root, run="raw/all")
    reg = butler.registry
    reg.insert_dimension_records("instrument", [{"name": "Sim"}])
    reg.insert_dimension_records("band", [{"name": b} for b in ("r", "g", "i")])
    reg.insert_dimension_records(
        "physical_filter",
        [{"instrument": "Sim", "name": f"{b}_sim", "band": b} for b in ("r", "g", "i")],
    )
    reg.insert_dimension_records(
        "detector", [{"instrument": "Sim", "id": d} for d in range(N_DETECTORS)]
    )
    reg.insert_dimension_records(
        "visit",
        [
            {"instrument": "Sim", "id": v, "physical_filter": f"{b}_sim", "band": b}
            for v, b in VISIT_BANDS.items()
        ],
    )
    reg.register_dataset_type(
        DatasetType.make("raw", ["instrument", "visit", "detector"], "NumpyArray", butler.universe)
    )
    for v, band in VISIT_BANDS.items():
        if band == "i":
            continue  # band i: visits, but no raws at all
        for d in range(N_DETECTORS):
            butler.put(np.zeros((2, 2), np.float32), "raw", instrument="Sim", visit=v, detector=d)
    return root


def test_gather_per_band_with_regions(repo):
    butler = Butler(repo)
    qg = build_quantum_graph(
        butler,
        Pipeline.from_string(PIPELINE).graph(),
        input_collections=["raw/all"],
        output_run="out/epsf",
    )
    # band i has no input: no quantum; bands r and g have one each
    assert sorted(qg.data_id(n)["band"] for n in qg.node_ids("measureExtendedPsf")) == ["g", "r"]
    summary = execute_graph(butler, qg, executor="sync", progress=False)
    assert summary.exit_code == 0, summary.failures
    counts = summary.counts["measureExtendedPsf"]
    # band g: every makeStamps quantum found no work -> no stamps -> no output, done
    assert counts["succeeded"] == 1 and counts["no_work"] == 1
    refs = butler.registry.query_datasets("extended_psf", collections=["out/epsf"])
    assert [ref.data_id["band"] for ref in refs] == ["r"]
    psf = butler.get(refs[0])
    assert isinstance(psf, ExtendedPsf) and psf.default is None
    assert sorted(psf.focal_plane_regions) == ["CENTER", "EDGE"]
    assert psf.detectors_focal_plane_regions == {0: "CENTER", 1: "CENTER", 2: "EDGE"}
    # 2 visits x 2 detectors x 6 stamps in CENTER, 2 x 1 x 6 in EDGE; detector 3 left out
    assert psf.focal_plane_regions["CENTER"].n_stamps == 24
    assert psf.focal_plane_regions["EDGE"].n_stamps == 12
    assert psf.metadata["NORMALIZATION"] == "ANNULUS"
    truth = truth_image(41, 3.0)
    truth_profile = azimuthal_profile(truth / annulus_mean(truth, 8, 12)).value
    for name in ("CENTER", "EDGE"):
        model = psf.get_regional_extended_psf(region_name=name)
        ratio = azimuthal_profile(model.image).value / truth_profile
        assert np.all(np.abs(ratio[:13] - 1) < 0.03), (name, ratio)
        assert psf.focal_plane_regions[name].profile is not None


class _Memory:
    def __init__(self, stamps):
        self.stamps = stamps

    def read(self, *, bbox=None, indices=None, planes=None):
        return self.stamps


def test_lost_detector_warns_once_and_no_stamps_is_no_work(caplog):
    config = MeasureExtendedPsfConfig()
    config.detectors_focal_plane_regions = {0: "a"}
    task = MeasureExtendedPsfTask(config=config)
    with caplog.at_level(logging.WARNING):
        groups = task.select_detector_stamps(["s1", "s2", "s3", "s4"], [0, 5, 5, 6])
    lost = [r for r in caplog.records if "not included in any focal-plane region" in r.message]
    assert [r.args[0] for r in lost] == [5, 6]  # one warning per detector
    assert groups == {"A": [("s1", 0)]}
    with pytest.raises(NoWorkFound, match="no bright-star stamp"):
        task.run([], [])
    config.stack_bright_stars.stacking_statistic = "MEDIAN"
    config.stack_bright_stars.subregion_size = [0, 10]
    with pytest.raises(ValueError, match="subregion_size"):
        config.validate()


def test_psf_amplitude_normalization_is_recorded(tmp_path):
    from _extended_psf_factory import make_star_stamps

    from imaging.extended_psf_io import read_extended_psf_fits, write_extended_psf_fits
    from imaging.stamp_stacking import FileStampSource
    from imaging.stamps_io import write_stamps_fits

    rng = np.random.default_rng(4)
    sources = []
    for k in range(3):
        path = tmp_path / f"d{k}.fits"
        write_stamps_fits(
            make_star_stamps(rng, 12, size=41, radii=(8, 12), nb90Rots=k, sky_level=0.0,
                             sky_sigma=0.3, first_id=100 * k),
            path,
        )  # fmt: skip
        sources.append(FileStampSource(str(path)))
    config = MeasureExtendedPsfConfig()
    config.normalization = "PSF_AMPLITUDE"
    config.fit_iterations = 2
    config.background_order = 1
    psf = MeasureExtendedPsfTask(config=config).run(sources, [0, 1, 2]).extended_psf
    expected = {"NORMALIZATION": "PSF_AMPLITUDE", "FIT_ITER": 2, "BKG_ORDER": 1,
                "FIT_START": "ANNULUS_STACK"}  # fmt: skip
    assert {k: psf.metadata[k] for k in expected} == expected
    write_extended_psf_fits(psf, tmp_path / "epsf.fits")
    assert read_extended_psf_fits(tmp_path / "epsf.fits").metadata == psf.metadata
    truth = truth_image(41, 3.0)
    ratio = azimuthal_profile(psf().image).value / azimuthal_profile(
        truth / annulus_mean(truth, 8, 12)
    ).value
    assert np.all(np.abs(ratio[:13] - 1) < 0.03), ratio
    assert psf.default.n_stamps == 36
    config.fit_background = False  # the amplitude alone: no pedestal recorded (-1)
    alone = MeasureExtendedPsfTask(config=config).run(sources, [0, 1, 2]).extended_psf
    assert alone.metadata["BKG_ORDER"] == -1 and alone.default.n_stamps == 36
    ratio = azimuthal_profile(alone().image).value / azimuthal_profile(
        truth / annulus_mean(truth, 8, 12)
    ).value
    assert np.all(np.abs(ratio[:13] - 1) < 0.03), ratio
    config.fit_iterations = 0
    with pytest.raises(ValueError, match="fit_iterations"):
        config.validate()
