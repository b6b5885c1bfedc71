"""Tests of the dimension universe, groups and data IDs (butler/dimensions.py)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from butler._errors import DataIdError, DataIdValueError, DimensionConfigError
from butler.data_coordinate import DataCoordinate
from butler.dimensions import DimensionUniverse

UNIVERSE = DimensionUniverse.default()
BASE = yaml.safe_load(
    """
version: 1
skypix: {name: healpix3, system: healpix, level: 3}
dimensions:
  instrument: {key: {name: name, type: string, length: 32}}
  detector: {key: {name: id, type: int}, requires: [instrument]}
"""
)


def make(**changes):
    config = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in changes.items():
        node = config
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return DimensionUniverse(config, source="test.yaml")


def test_default_universe():
    assert {"instrument", "band", "physical_filter", "detector", "visit", "healpix7"} <= set(
        UNIVERSE.dimension_names
    )
    assert "visit_detector_region" in UNIVERSE.element_names
    assert "visit_detector_region" not in UNIVERSE.dimension_names
    assert UNIVERSE.skypix.nside == 128
    names = UNIVERSE.element_names
    assert (
        names.index("instrument") < names.index("detector") < names.index("visit_detector_region")
    )
    assert UNIVERSE.dimension("detector").key.name == "id"
    assert DimensionUniverse(UNIVERSE.to_config()) == UNIVERSE


def test_group_closure():
    group = UNIVERSE.group(["visit"])
    assert group.required == ("instrument", "visit")
    assert set(group.implied) == {"physical_filter", "band"}
    assert UNIVERSE.group(["detector", "visit"]).issubset(
        UNIVERSE.group(["detector", "visit", "healpix7"])
    )
    assert UNIVERSE.group(["detector"]).union(UNIVERSE.group(["visit"])) == UNIVERSE.group(
        ["visit", "detector"]
    )


def test_malformed_yaml_reports_line():
    text = (
        "version: 1\nskypix: {name: h, system: healpix, level: 3}\n"
        "dimensions:\n  a: [1, 2\n  b: 3\n"
    )
    with pytest.raises(DimensionConfigError, match=r"^bad\.yaml:\d+: invalid YAML"):
        DimensionUniverse.from_yaml_text(text, source="bad.yaml")
    with pytest.raises(DimensionConfigError, match="expected a mapping at the top level"):
        DimensionUniverse.from_yaml_text("- 1\n- 2\n", source="list.yaml")


def test_unknown_and_missing_keys():
    with pytest.raises(
        DimensionConfigError, match=r"dimensions\.detector: unknown key\(s\) \['kee'\]"
    ):
        make(dimensions__detector={"kee": {"name": "id", "type": "int"}})
    with pytest.raises(
        DimensionConfigError, match=r"dimensions\.detector: a dimension needs a 'key'"
    ):
        make(dimensions__detector={"requires": ["instrument"]})
    with pytest.raises(DimensionConfigError, match="missing or invalid key 'skypix'"):
        config = dict(BASE)
        del config["skypix"]
        DimensionUniverse(config, source="test.yaml")


def test_wrong_types_and_references():
    with pytest.raises(DimensionConfigError, match=r"unknown type 'integer'"):
        make(dimensions__detector__key={"name": "id", "type": "integer"})
    with pytest.raises(DimensionConfigError, match="needs 'name' and 'type'"):
        make(dimensions__detector__key={"name": "id"})
    with pytest.raises(DimensionConfigError, match="expected a mapping, got list"):
        make(dimensions__detector=[1, 2])
    with pytest.raises(DimensionConfigError, match="refers to unknown dimension 'camera'"):
        make(dimensions__detector__requires=["camera"])
    with pytest.raises(DimensionConfigError, match="skypix.system 'htm' is not supported"):
        make(skypix__system="htm")
    with pytest.raises(DimensionConfigError, match="missing or invalid key"):
        make(skypix__level="seven")
    with pytest.raises(DimensionConfigError, match="dependency cycle"):
        make(dimensions__instrument__requires=["detector"])


def test_data_id_errors_name_the_key():
    group = UNIVERSE.group(["visit", "detector"])
    with pytest.raises(DataIdError, match=r"missing required key\(s\) \['detector'\]"):
        DataCoordinate.standardize({"instrument": "Sim", "visit": 1}, group)
    with pytest.raises(DataIdError, match="unknown data ID key 'detectr'; did you mean 'detector'"):
        DataCoordinate.standardize(
            {"instrument": "Sim", "visit": 1, "detector": 2, "detectr": 3}, group
        )
    with pytest.raises(DataIdError, match="'healpix7' is not a dimension of"):
        DataCoordinate.standardize(
            {"instrument": "Sim", "visit": 1, "detector": 2, "healpix7": 3}, group
        )
    with pytest.raises(DataIdValueError, match="'detector': expected an int, got str 'abc'"):
        DataCoordinate.standardize({"instrument": "Sim", "visit": 1, "detector": "abc"}, group)
    with pytest.raises(DataIdValueError, match="'visit': expected an int, got True"):
        DataCoordinate.standardize({"instrument": "Sim", "visit": True, "detector": 1}, group)
    with pytest.raises(DataIdValueError, match="'instrument': expected a string, got int 5"):
        DataCoordinate.standardize({"instrument": 5, "visit": 1, "detector": 1}, group)
    with pytest.raises(DataIdError, match="unknown dimension 'vist'; did you mean 'visit'"):
        UNIVERSE.group(["vist"])


def test_data_id_accepts_implied_and_numpy():
    group = UNIVERSE.group(["visit"])
    data_id = DataCoordinate.standardize(
        {"instrument": "Sim", "visit": np.int64(3), "band": "r"}, group
    )
    assert data_id.required == {"instrument": "Sim", "visit": 3}
    assert type(data_id["visit"]) is int
    assert data_id["band"] == "r" and data_id.full["band"] == "r"
    assert data_id.canonical_string() == "instrument=Sim,visit=3"
    assert DataCoordinate.standardize(universe=UNIVERSE, instrument="Sim", visit=3) == data_id


INT_FORMS = st.sampled_from([int, str, np.int32, np.int64])


@settings(max_examples=100, deadline=None)
@given(
    visit=st.integers(0, 10**9),
    detector=st.integers(-5, 500),
    visit_form=INT_FORMS,
    detector_form=INT_FORMS,
    order=st.permutations(["instrument", "visit", "detector"]),
)
def test_standardize_is_canonical(visit, detector, visit_form, detector_form, order):
    group = UNIVERSE.group(["visit", "detector"])
    reference = DataCoordinate.standardize(
        {"instrument": "Sim", "visit": visit, "detector": detector}, group
    )
    values = {"instrument": "Sim", "visit": visit_form(visit), "detector": detector_form(detector)}
    shuffled = {key: values[key] for key in order}
    data_id = DataCoordinate.standardize(shuffled, group)
    assert data_id == reference
    assert hash(data_id) == hash(reference)
    assert data_id.canonical_string() == reference.canonical_string()
    assert list(data_id) == list(group.required)
    assert all(type(data_id[k]) is int for k in ("visit", "detector"))


@settings(max_examples=100, deadline=None)
@given(
    visit=st.one_of(st.integers(-(10**12), 10**12), st.booleans(), st.text(max_size=4)),
    instrument=st.one_of(st.text(max_size=6), st.integers(0, 9)),
    extra=st.sampled_from([{}, {"band": "r"}, {"detector": 1}]),
)
def test_standardize_fast_path_matches_general_one(visit, instrument, extra):
    """A plain dict (fast path) and a read-only mapping (general path) agree, errors too."""
    import types

    group = UNIVERSE.group(["visit"])
    values = {"instrument": instrument, "visit": visit, **extra}
    outcomes = []
    for form in (dict, types.MappingProxyType):
        try:
            data_id = DataCoordinate.standardize(form(values), group)
        except (DataIdError, DataIdValueError) as err:
            outcomes.append((type(err), str(err)))
        else:
            outcomes.append((data_id.values_tuple, data_id.implied, data_id.canonical_string()))
            assert [type(v) for v in data_id.values_tuple] == [str, int]
            assert data_id.canonical_string() == ",".join(
                f"{k}={v}" for k, v in zip(group.required, data_id.values_tuple, strict=True)
            )
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("text", ["¹", "٣", "1_000", "--1", "-", "", " "])
def test_non_ascii_or_malformed_digit_strings_are_data_id_errors(text):
    # "¹".isdigit() is True but int("¹") fails; int("٣") is 3, but data IDs are ASCII.
    with pytest.raises(DataIdValueError, match="expected an int"):
        DataCoordinate.standardize({"instrument": "Cam", "visit": text}, UNIVERSE.group(["visit"]))


def test_padded_and_negative_digit_strings_are_ints():
    group = UNIVERSE.group(["visit"])
    assert (
        DataCoordinate.standardize({"instrument": "Cam", "visit": " -12 "}, group)["visit"] == -12
    )
