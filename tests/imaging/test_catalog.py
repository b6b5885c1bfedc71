import numpy as np
import pytest

from imaging._errors import CatalogSchemaError
from imaging.catalog import CatalogSchema, ColumnSpec
from imaging.refcat import REFCAT_SCHEMA, read_reference_catalog, write_reference_catalog

SCHEMA = CatalogSchema(
    (
        ColumnSpec("id", "int64", "", "id"),
        ColumnSpec("flux", "float64", "adu", "flux"),
        ColumnSpec("flag_edge", "bool", "", "near the edge"),
    )
)


def test_make_validate_round_trip():
    table = SCHEMA.make_table(3)
    assert table.colnames == ["id", "flux", "flag_edge"]
    assert table["flag_edge"].dtype == bool and not table["flag_edge"].any()
    assert str(table["flux"].unit) == "adu"
    SCHEMA.validate(table)
    assert CatalogSchema.from_dict(SCHEMA.to_dict()) == SCHEMA
    assert SCHEMA["flag_edge"].is_flag


def test_validate_errors():
    table = SCHEMA.make_table(1)
    table.remove_column("flux")
    with pytest.raises(CatalogSchemaError, match="flux"):
        SCHEMA.validate(table, source="cat.fits")
    table = SCHEMA.make_table(1)
    table["flag_edge"] = np.array([1.5])
    with pytest.raises(CatalogSchemaError, match="flag_edge"):
        SCHEMA.validate(table)
    with pytest.raises(CatalogSchemaError, match="Duplicate"):
        CatalogSchema((ColumnSpec("a", "f8"), ColumnSpec("a", "i4")))


def test_refcat_fits_round_trip(tmp_path):
    table = REFCAT_SCHEMA.make_table(4)
    table["id"] = np.arange(4)
    table["ra"] = [10.0, 10.01, 10.5, 11.0]
    table["dec"] = [-5.0, -5.0, -5.0, -5.0]
    path = write_reference_catalog(table, tmp_path / "refcat.fits")
    back = read_reference_catalog(path)
    assert list(back["id"]) == [0, 1, 2, 3]
    cone = read_reference_catalog(path, center=(10.0, -5.0), radius=0.1)
    assert list(cone["id"]) == [0, 1]
    table.remove_column("phot_g_mean_mag")
    with pytest.raises(CatalogSchemaError, match="phot_g_mean_mag"):
        write_reference_catalog(table, tmp_path / "bad.fits")
