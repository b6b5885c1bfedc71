import pytest

from imaging.geometry import Box


def test_box_ends_and_contains():
    box = Box(10, 20, 30, 40)
    assert (box.x1, box.y1, box.shape, box.area) == (40, 60, (40, 30), 1200)
    assert box.contains(Box(10, 20, 30, 40))
    assert not box.contains(Box(9, 20, 30, 40))
    assert box.contains((10.0, 20.0)) and not box.contains((40.0, 20.0))
    assert box.contains(Box(0, 0, 0, 0))


def test_intersection_union_dilated_slices():
    a, b = Box(0, 0, 10, 10), Box(5, 7, 10, 10)
    assert a.intersection(b) == Box(5, 7, 5, 3)
    assert a.intersection(Box(20, 20, 5, 5)).is_empty()
    assert a.union(b) == Box(0, 0, 15, 17)
    assert a.dilated(2) == Box(-2, -2, 14, 14)
    assert b.slices((5, 5)) == (slice(2, 12), slice(0, 10))
    with pytest.raises(ValueError):
        b.slices((6, 0))
    with pytest.raises(ValueError):
        Box(0, 0, -1, 3)
    assert Box.from_list(b.to_list()) == b
    assert b.to_fits_section() == "[6:15,8:17]"
