"""The extended-PSF pictures are written (and are pictures, not empty files)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from imaging.exposure import Exposure  # noqa: E402
from imaging.extended_psf import ExtendedPsf, RegionalExtendedPsf  # noqa: E402
from imaging.extended_psf_pictures import (  # noqa: E402
    write_model_picture,
    write_profile_picture,
    write_subtraction_picture,
)
from imaging.extended_psf_profile import azimuthal_profile, fit_profile  # noqa: E402


def test_pictures(tmp_path):
    ys, xs = np.mgrid[0:61, 0:61]
    r = np.hypot(xs - 30, ys - 30)
    model = ((1 + (r / 2.0) ** 2) ** -3 + 0.01 * (1 + (r / 10.0) ** 2) ** -1.5).astype(np.float32)
    model[:3] = np.nan
    psf = ExtendedPsf(metadata={"NORMALIZATION": "ANNULUS"})
    fit = fit_profile(azimuthal_profile(model))
    psf.add_regional_extended_psf(RegionalExtendedPsf(Exposure(model), [1, 2], 7, fit), "a")
    psf.add_regional_extended_psf(Exposure(model * 1.1), "b", [3])
    paths = [
        write_model_picture(psf, str(tmp_path / "m" / "model.png")),
        write_profile_picture(psf, str(tmp_path / "profile.png"), truth=fit),
        write_subtraction_picture(model * 100, model * 5, (30, 30), str(tmp_path / "s.png")),
    ]
    for path in paths:
        with open(path, "rb") as stream:
            assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / path).stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["model.png", "profile.png", "s.png"]
