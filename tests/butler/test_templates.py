"""File templates: fields, optional fields, sanitizing, staying inside the root."""

from __future__ import annotations

import itertools

import pytest

from butler._errors import InvalidNameError
from butler.data_coordinate import DataCoordinate
from butler.dataset_ref import DatasetRef
from butler.dataset_type import DatasetType
from butler.datastore.templates import DEFAULT_TEMPLATE, FileTemplate, FileTemplates
from butler.dimensions import DimensionUniverse

UNIVERSE = DimensionUniverse.default()


def make_ref(
    name="calexp", run="run1", storage_class="StructuredDataDict", implied=None, **data_id
):
    dataset_type = DatasetType.make(name, data_id.keys(), storage_class, UNIVERSE)
    ref = DatasetRef.make(dataset_type, data_id, run)
    if implied:
        coordinate = DataCoordinate.standardize({**data_id, **implied}, dataset_type.dimensions)
        ref = DatasetRef(dataset_type, coordinate, run, ref.id)
    return ref


def test_fields():
    ref = make_ref(run="u/me/r1", instrument="Cam", visit=42, detector=3)
    template = FileTemplate(
        "{run}/{datasetType}/{storageClass}/{instrument}/{visit}_{detector}_{id}"
    )
    assert template.fields == (
        "run",
        "datasetType",
        "storageClass",
        "instrument",
        "visit",
        "detector",
        "id",
    )
    assert template.format(ref) == f"u/me/r1/calexp/StructuredDataDict/Cam/42_3_{ref.id.hex}"


def test_default_template():
    ref = make_ref(instrument="Cam", visit=42, detector=3)
    path = FileTemplates().format(ref)
    assert path == f"run1/calexp/calexp_Cam_3_42_{ref.id.hex}"
    assert FileTemplates().default.template == DEFAULT_TEMPLATE


def test_default_template_without_dimensions():
    ref = make_ref("summary")
    assert FileTemplates().format(ref) == f"run1/summary/summary_{ref.id.hex}"


def test_default_template_is_unique_over_dimension_combinations():
    names = ["instrument", "detector", "visit", "band", "physical_filter", "healpix7"]
    values = {
        "instrument": "Cam",
        "detector": 1,
        "visit": 1,
        "band": "r",
        "physical_filter": "r",
        "healpix7": 1,
    }
    path_of = {}
    for n in range(len(names) + 1):
        for combo in itertools.combinations(names, n):
            group = UNIVERSE.group(combo)
            data_id = {k: values[k] for k in group.required}
            for run in ("a", "a_b", "a/b", "a.b"):
                for dt in ("x", "x_1"):
                    ref = make_ref(dt, run=run, **data_id)
                    path_of[ref.id] = FileTemplates().format(ref)
    assert len(path_of) > 100
    assert len(set(path_of.values())) == len(path_of)


def test_values_that_sanitize_alike_stay_distinct():
    a = make_ref(instrument="Cam a", visit=1)
    b = make_ref(instrument="Cam_a", visit=1)
    assert FileTemplates().format(a) != FileTemplates().format(b)
    assert "Cam_a_1" in FileTemplates().format(a)


def test_optional_fields_drop_with_separator():
    template = FileTemplate("{run}/{instrument:?}/{band:?}/{datasetType}_{visit:?}_{detector:?}")
    ref = make_ref(instrument="Cam", detector=5)
    assert template.format(ref) == "run1/Cam/calexp_5"
    assert template.format(make_ref()) == "run1/calexp"
    leading = FileTemplate("{band:?}/{run}/{id}")
    assert leading.format(make_ref()) == f"run1/{make_ref().id.hex}"


def test_implied_values_are_usable():
    template = FileTemplate("{run}/{band:?}/{visit}")
    ref = make_ref(implied={"band": "g", "physical_filter": "g1"}, instrument="Cam", visit=7)
    assert template.format(ref) == "run1/g/7"
    assert template.format(make_ref(instrument="Cam", visit=7)) == "run1/7"


def test_missing_required_field():
    template = FileTemplate("{run}/{visit}/{id}")
    with pytest.raises(InvalidNameError, match=r"\{run\}/\{visit\}/\{id\}.*'visit'"):
        template.format(make_ref(instrument="Cam"))


def test_sanitizing():
    template = FileTemplate("{run}/{instrument}/{id}")
    ref = make_ref(run="u/me/weird run", instrument="Cam; rm -rf *")
    assert template.format(ref) == f"u/me/weird_run/Cam__rm_-rf__/{ref.id.hex}"


@pytest.mark.parametrize("run", ["../escape", "a/../../b", "a//b", "/abs", "a/./b", "a/"])
def test_escaping_the_root_is_refused(run):
    with pytest.raises(InvalidNameError, match="escape"):
        FileTemplates().format(make_ref(run=run))


def test_dotdot_value_as_component_is_refused():
    template = FileTemplate("{run}/{instrument}/{id}")
    with pytest.raises(InvalidNameError, match=r"'run1/\.\./"):
        template.format(make_ref(instrument=".."))


@pytest.mark.parametrize(
    "bad", ["", "   ", "/{run}/{id}", "{run}/{id", "plain/text", "{run}/{id}}"]
)
def test_bad_templates(bad):
    with pytest.raises(InvalidNameError):
        FileTemplate(bad)


def test_overrides():
    templates = FileTemplates("{run}/{id}", {"calexp": "{run}/special/{id}"})
    calexp, other = make_ref(), make_ref("other")
    assert templates.format(calexp) == f"run1/special/{calexp.id.hex}"
    assert templates.format(other) == f"run1/{other.id.hex}"
    assert templates.template_for("calexp") == FileTemplate("{run}/special/{id}")
