import numpy as np
import pytest

from imaging._errors import ImagingError, MaskPlaneError
from imaging.mask import DEFAULT_MASK_PLANES, Mask


def test_default_planes_in_order():
    mask = Mask((4, 5))
    assert list(mask.planes) == list(DEFAULT_MASK_PLANES)
    assert mask.bit("BAD") == 0 and mask.bit("SAT") == 1 and mask.bit("UNMASKEDNAN") == 10
    assert mask.array.dtype == np.uint32


def test_set_is_set_bitmask():
    mask = Mask((4, 5))
    where = np.zeros((4, 5), bool)
    where[1, 2] = True
    mask.set("CR", where)
    mask.set("SAT", np.eye(4, 5, dtype=bool))
    assert mask.is_set("CR").sum() == 1 and mask.is_set("CR")[1, 2]
    assert mask.is_set(["CR", "SAT"]).sum() == 5
    assert mask.get_plane_bitmask(["BAD", "CR"]) == (1 << 0) | (1 << 3)
    assert mask.array[1, 2] == 1 << 3 and mask.array[1, 1] == 1 << 1
    mask.clear("CR")
    assert not mask.is_set("CR").any()


def test_unknown_plane_names_it():
    mask = Mask((2, 2))
    with pytest.raises(MaskPlaneError, match="NOPE"):
        mask.bit("NOPE")
    with pytest.raises(KeyError):
        mask.is_set("NOPE")
    with pytest.raises(ImagingError):
        mask.set("NOPE", np.ones((2, 2), bool))


def test_add_plane_until_full():
    mask = Mask((2, 2))
    bits = [mask.add_plane(f"P{i}") for i in range(32 - len(DEFAULT_MASK_PLANES))]
    assert bits == list(range(len(DEFAULT_MASK_PLANES), 32))
    assert mask.add_plane("P0") == bits[0]  # existing: no new bit
    with pytest.raises(MaskPlaneError, match="EXTRA"):
        mask.add_plane("EXTRA")
    mask.set("P20", np.ones((2, 2), bool))
    assert (mask.array == np.uint32(1 << 31)).all()


def test_header_round_trip():
    mask = Mask((3, 3))
    mask.add_plane("STREAK")
    header = mask.to_header()
    assert header["MP_BAD"] == 0 and header["MP_STREAK"] == 11
    back = Mask.from_header(mask.array, header)
    assert back.planes == mask.planes and back == mask


def test_header_with_shared_bit_is_rejected():
    with pytest.raises(MaskPlaneError, match="MP_B"):
        Mask.planes_from_header({"MP_A": 3, "MP_B": 3}, source="x.fits")
    with pytest.raises(MaskPlaneError, match="MP_A"):
        Mask.planes_from_header({"MP_A": "three"}, source="x.fits")
