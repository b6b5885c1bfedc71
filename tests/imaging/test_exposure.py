import numpy as np
import pytest
from _exposure_factory import make_exposure

from imaging.exposure import DetectorInfo, Exposure
from imaging.geometry import Box


def test_subset_keeps_frames_and_views():
    exp = make_exposure(xy0=(100, 50))
    box = Box(150, 80, 40, 30)
    sub = exp[box]
    assert sub.xy0 == (150, 80) and sub.bbox == box
    assert sub.wcs is exp.wcs and sub.psf is exp.psf and sub.has_psf() and sub.hasPsf()
    assert np.array_equal(sub.image, exp.image[30:60, 50:90])
    # parent coordinates: the same sky at the same parent pixel
    assert sub.wcs.pixel_to_world_values(160.0, 90.0) == exp.wcs.pixel_to_world_values(160.0, 90.0)
    sub.image[0, 0] = -1.0  # a view
    assert exp.image[30, 50] == -1.0
    copy = exp.subset(box, copy=True)
    copy.image[0, 0] = 7.0
    assert exp.image[30, 50] == -1.0
    with pytest.raises(ValueError):
        exp.subset(Box(0, 0, 10, 10))


def test_clone_is_deep():
    exp = make_exposure()
    other = exp.clone()
    other.image[0, 0] += 1
    other.mask.array[0, 0] = 99
    other.wcs.wcs.crval = [0, 0]
    assert exp.image[0, 0] != other.image[0, 0] and exp.mask.array[0, 0] != 99
    assert exp.wcs.wcs.crval[0] != 0


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="variance"):
        Exposure(np.zeros((4, 4)), variance=np.zeros((4, 5)))


def test_detector_transform_rotation_convention():
    det = DetectorInfo(
        0, "A", Box(0, 0, 101, 51), orientation=90.0, focal_plane_position=(10.0, 0.0)
    )
    cx, cy = det.bbox.center
    fx, fy = det.pixel_to_focal_plane(cx + 10, cy)  # +x pixel axis -> +y focal plane at 90 deg
    assert (float(fx), float(fy)) == (pytest.approx(10.0), pytest.approx(0.1))
    x, y = det.focal_plane_to_pixel(fx, fy)
    assert (float(x), float(y)) == (pytest.approx(cx + 10), pytest.approx(cy))
    with pytest.raises(ValueError, match="orientation"):
        DetectorInfo(0, "A", Box(0, 0, 1, 1), orientation=45.0)
    assert DetectorInfo.from_dict(det.to_dict()) == det


def test_visit_date_obs():
    exp = make_exposure()
    assert exp.visit.date_obs.startswith("2024-01-0")
