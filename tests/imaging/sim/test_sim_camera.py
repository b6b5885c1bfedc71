import numpy as np
import pytest
import yaml

from imaging._errors import CameraFormatError
from imaging.sim import Camera, make_camera, make_detector_wcs


def test_default_camera_layout():
    cam = make_camera()
    assert len(cam.detectors) == 9
    assert {d.orientation for d in cam.detectors} == {0.0, 90.0, 180.0, 270.0}
    assert cam.detectors[0].bbox.shape == (4096, 4096)
    assert cam.detector(4).focal_plane_position == (0.0, 0.0)
    assert len({d.name for d in cam.detectors}) == 9


def test_yaml_round_trip(tmp_path):
    cam = make_camera(4, detector_size=(300, 200))
    path = cam.to_yaml(tmp_path / "camera.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["detectors"][1]["rotation"] == 90.0 and data["detectors"][1]["size"] == [300, 200]
    back = Camera.from_yaml(path)
    assert back == cam


def test_yaml_errors_name_file_and_key(tmp_path):
    cam = make_camera(2, detector_size=64)
    data = cam.to_dict()
    del data["detectors"][1]["gain"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CameraFormatError, match=r"broken\.yaml.*detectors\[1\]\.gain"):
        Camera.from_yaml(path)
    data = cam.to_dict()
    data["detectors"][0]["rotation"] = 45
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CameraFormatError, match=r"detectors\[0\]"):
        Camera.from_yaml(path)
    with pytest.raises(FileNotFoundError):
        Camera.from_yaml(tmp_path / "none.yaml")


def test_wcs_distortion_and_rotation():
    cam = make_camera(9, detector_size=4096, distortion_k=1e-6)
    det0, det1 = cam.detector(0), cam.detector(1)
    w0 = make_detector_wcs(
        detector=det0,
        boresight=(10.0, -30.0),
        rotation_angle=0.0,
        pixel_scale=0.2,
        distortion_k=1e-6,
    )
    w1 = make_detector_wcs(
        detector=det1,
        boresight=(10.0, -30.0),
        rotation_angle=0.0,
        pixel_scale=0.2,
        distortion_k=1e-6,
    )
    k_pix = 1e-6 * 0.01**2
    for w in (w0, w1):
        assert w.sip.a[3, 0] == w.sip.a[1, 2] == w.sip.b[0, 3] == w.sip.b[2, 1] == k_pix
    assert not np.allclose(w0.wcs.cd, w1.wcs.cd)
    # The boresight pixel maps to the pointing; the same sky point lands on each detector's
    # pixel given by the focal-plane geometry (round trip through the distortion).
    bx, by = det0.focal_plane_to_pixel(0.0, 0.0)
    assert np.allclose(w0.all_pix2world(bx, by, 0), (10.0, -30.0))
    x, y = 1000.3, 2000.7
    ra, dec = w0.all_pix2world(x, y, 0)
    assert np.allclose(w0.all_world2pix(ra, dec, 0), (x, y), atol=1e-6)
    # pixel scale at the centre of the field is the nominal one, larger at the edge
    center = make_detector_wcs(
        detector=cam.detector(4),
        boresight=(10.0, -30.0),
        rotation_angle=0.0,
        pixel_scale=0.2,
        distortion_k=1e-6,
    )
    c = cam.detector(4).bbox.center
    scale_c = np.abs(np.linalg.det(_jac(center, *c))) ** 0.5 * 3600
    scale_e = np.abs(np.linalg.det(_jac(w0, 0.0, 0.0))) ** 0.5 * 3600
    assert scale_c == pytest.approx(0.2, rel=1e-4)
    assert scale_e > scale_c * 1.005


def _jac(w, x, y, h=1.0):
    def proj(px, py):
        ra, dec = w.all_pix2world(px, py, 0)
        return np.array([ra * np.cos(np.radians(dec)), dec])

    return np.column_stack(
        [(proj(x + h, y) - proj(x - h, y)) / 2, (proj(x, y + h) - proj(x, y - h)) / 2]
    )
