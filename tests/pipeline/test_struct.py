import pytest

from pipeline.struct import Struct


def test_attribute_access_and_dict():
    s = Struct(exposure=1, sourceCat=[2])
    assert s.exposure == 1
    assert s.getDict() == {"exposure": 1, "sourceCat": [2]}
    assert len(s) == 2 and "exposure" in s
    assert repr(s) == "Struct(exposure=1, sourceCat=[2])"


def test_reserved_names_refused():
    with pytest.raises(ValueError, match="getDict"):
        Struct(getDict=1)
    s = Struct()
    with pytest.raises(ValueError, match="copy"):
        s.copy = 3


def test_merge_items_and_copy():
    a = Struct(x=1, y=2)
    b = Struct(z=3)
    b.mergeItems(a, "x")
    assert b == Struct(z=3, x=1)
    with pytest.raises(RuntimeError, match="'x'"):
        b.mergeItems(a, "x")
    with pytest.raises(AttributeError, match="'nope'"):
        b.mergeItems(a, "nope")
    c = b.copy()
    c.z = 4
    assert b.z == 3 and c.z == 4
