import io
import pickle

import pytest

from pipeline._errors import (
    DuplicateRegistrationError,
    FieldValidationError,
    FrozenConfigError,
    UnknownConfigFieldError,
)
from pipeline.config import (
    ChoiceField,
    Config,
    ConfigField,
    ConfigurableField,
    DictField,
    Field,
    ListField,
    RangeField,
    RegistryField,
    applyOverrides,
    loadPythonOverrides,
    loadYamlOverrides,
    makeRegistry,
    parseOverrideString,
)


class StarSelectorConfig(Config):
    fluxMin = Field(float, "Minimum flux", default=12500.0)
    badFlags = ListField(str, "Flags", default=["base_PixelFlags_flag_edge"])


class StarSelector:
    ConfigClass = StarSelectorConfig

    def __init__(self, *, config, name=None):
        self.config, self.name = config, name


class OtherSelectorConfig(StarSelectorConfig):
    widthMax = Field(float, "Max width", default=10.0)


class OtherSelector(StarSelector):
    ConfigClass = OtherSelectorConfig


class PsfexConfig(Config):
    spatialOrder = Field(int, "Spatial order", default=2)


class PcaConfig(Config):
    nEigenComponents = RangeField(int, "Components", default=4, min=1)


class Psfex:
    ConfigClass = PsfexConfig

    def __init__(self, *, config):
        self.config = config


class Pca(Psfex):
    ConfigClass = PcaConfig


PSF_REGISTRY = makeRegistry("PSF determiners")
PSF_REGISTRY.register("psfex", Psfex)
PSF_REGISTRY.register("pca", Pca)


class MeasurePsfConfig(Config):
    starSelector = ConfigurableField("Star selector", target=StarSelector)
    psfDeterminer = RegistryField("PSF determiner", PSF_REGISTRY, default="psfex")


class CharacterizeConfig(Config):
    psfIterations = RangeField(int, "PSF iterations", default=2, min=1)
    doMeasurePsf = Field(bool, "Measure PSF?", default=True)
    threshold = Field(float, "Threshold", default=5.0, check=lambda v: v > 0)
    label = Field(str, "Optional label", optional=True)
    kernel = ChoiceField(str, "Warp kernel", allowed={"lanczos5": "", "bilinear": ""},
                         default="lanczos5")
    radii = ListField(int, "Annulus radii", default=[40, 50], length=2)
    filterMap = DictField(str, str, "Filter map", default={})
    measurePsf = ConfigField(MeasurePsfConfig, "PSF measurement")

    def setDefaults(self):
        super().setDefaults()
        self.measurePsf.starSelector.fluxMin = 5000.0


def test_defaults_and_set_defaults():
    c = CharacterizeConfig()
    assert c.psfIterations == 2
    assert c.measurePsf.starSelector.fluxMin == 5000.0
    assert c.measurePsf.psfDeterminer.name == "psfex"
    assert c.measurePsf.psfDeterminer.active.spatialOrder == 2
    c.validate()


def test_type_errors_name_class_path_and_value():
    c = CharacterizeConfig()
    with pytest.raises(FieldValidationError, match=r"CharacterizeConfig\.measurePsf"
                       r"\.starSelector\.fluxMin: value 'abc'"):
        c.measurePsf.starSelector.fluxMin = "abc"
    with pytest.raises(TypeError):
        c.psfIterations = 2.5
    with pytest.raises(FieldValidationError, match="doMeasurePsf"):
        c.doMeasurePsf = "yes"
    with pytest.raises(FieldValidationError, match="item 'x'"):
        c.radii = [1, "x"]
    with pytest.raises(FieldValidationError):
        c.radii.append("x")
    c.threshold = 3  # int promoted to float
    assert isinstance(c.threshold, float)
    with pytest.raises(FieldValidationError):
        c.psfIterations = True  # bool is not an int


def test_validate_range_choice_check_length_optional():
    c = CharacterizeConfig()
    c.psfIterations = 0
    with pytest.raises(FieldValidationError, match=r"psfIterations: value 0 is outside"):
        c.validate()
    c.psfIterations = 1
    c.kernel = "lanczos4"
    with pytest.raises(ValueError, match="kernel"):
        c.validate()
    c.kernel = "bilinear"
    c.threshold = -1.0
    with pytest.raises(FieldValidationError, match="threshold"):
        c.validate()
    c.threshold = 1.0
    c.radii.append(60)
    with pytest.raises(FieldValidationError, match="radii"):
        c.validate()
    del c.radii[-1]
    c.measurePsf.psfDeterminer.name = "pca"
    c.measurePsf.psfDeterminer.active.nEigenComponents = 0
    with pytest.raises(FieldValidationError, match="nEigenComponents"):
        c.validate()
    c.measurePsf.psfDeterminer["pca"].nEigenComponents = 3
    c.validate()
    c.threshold = None
    with pytest.raises(FieldValidationError, match="threshold: required"):
        c.validate()


def test_unknown_field_suggests_near_miss():
    c = CharacterizeConfig()
    with pytest.raises(UnknownConfigFieldError, match="did you mean 'psfIterations'") as info:
        c.psfIteratons = 3
    assert isinstance(info.value, AttributeError)
    with pytest.raises(AttributeError, match="did you mean 'fluxMin'"):
        c.measurePsf.starSelector.fluxMn  # noqa: B018
    with pytest.raises(UnknownConfigFieldError, match="starSelector"):
        c.setByPath("measurePsf.starSelectr.fluxMin", 1.0)


def test_freeze():
    c = CharacterizeConfig()
    c.freeze()
    for action in (
        lambda: setattr(c, "psfIterations", 3),
        lambda: c.radii.append(1),
        lambda: c.filterMap.update(g="g"),
        lambda: setattr(c.measurePsf.starSelector, "fluxMin", 1.0),
        lambda: setattr(c.measurePsf.psfDeterminer, "name", "pca"),
        lambda: c.measurePsf.starSelector.retarget(OtherSelector),
    ):
        with pytest.raises(FrozenConfigError):
            action()
    copy = c.copy()
    copy.psfIterations = 5
    assert c.psfIterations == 2


def test_history_records_where():
    c = CharacterizeConfig()
    c.setByPath("measurePsf.starSelector.fluxMin", 100.0, where="pipeline YAML file.yaml")
    c.psfIterations = 3
    hist = c.history["measurePsf.starSelector.fluxMin"]
    assert [v for v, _ in hist] == [12500.0, 5000.0, 100.0]
    assert [w for _, w in hist][0] == "default"
    assert hist[1][1] == "CharacterizeConfig.setDefaults"
    assert hist[2][1] == "pipeline YAML file.yaml"
    assert c.history["psfIterations"][-1][1].startswith("test_config.py:")
    assert c.getByPath("measurePsf.starSelector.fluxMin") == 100.0


def test_configurable_retarget_and_apply():
    c = CharacterizeConfig()
    sel = c.measurePsf.starSelector
    assert sel.apply(name="s").config is sel.value
    sel.retarget(OtherSelector)
    assert sel.target is OtherSelector
    assert isinstance(sel.value, OtherSelectorConfig)
    sel.widthMax = 3.0
    built = sel.apply()
    assert isinstance(built, OtherSelector) and built.config.widthMax == 3.0
    # retarget survives a YAML round trip (classes are importable from this module)
    stream = io.StringIO()
    c.saveToYaml(stream)
    again = CharacterizeConfig()
    again.loadFromYaml(io.StringIO(stream.getvalue()))
    assert again.measurePsf.starSelector.target is OtherSelector
    assert again == c


def test_registry_field():
    c = CharacterizeConfig()
    reg = c.measurePsf.psfDeterminer
    reg.name = "pca"
    reg["pca"].nEigenComponents = 6
    assert reg.active.nEigenComponents == 6
    assert isinstance(reg.apply(), Pca)
    with pytest.raises(FieldValidationError, match="did you mean 'psfex'"):
        reg.name = "psfx"
    with pytest.raises(DuplicateRegistrationError, match="psfex"):
        PSF_REGISTRY.register("psfex", Pca)


def test_yaml_round_trip_and_compare(tmp_path):
    c = CharacterizeConfig()
    c.psfIterations = 4
    c.radii = [10, 20]
    c.filterMap["g"] = "HSC-G"
    c.measurePsf.psfDeterminer.name = "pca"
    c.measurePsf.psfDeterminer["pca"].nEigenComponents = 7
    path = tmp_path / "c.yaml"
    c.saveToYaml(path)
    loaded = CharacterizeConfig()
    loaded.loadFromYaml(path)
    assert loaded == c
    assert loaded.compare(c) == []
    assert loaded.history["psfIterations"][-1] == (4, "c.yaml")
    d = CharacterizeConfig()
    diffs = d.compare(c)
    assert "psfIterations: 2 != 4" in diffs
    assert "measurePsf.psfDeterminer.name: 'psfex' != 'pca'" in diffs
    assert d != c
    assert CharacterizeConfig.fromDict(c.toDict()) == c


def test_pickle_round_trip_keeps_checks():
    c = CharacterizeConfig()
    c.radii = [1, 2]
    again = pickle.loads(pickle.dumps(c))
    assert again == c
    with pytest.raises(FieldValidationError):
        again.radii.append("x")


def test_overrides_from_strings():
    c = CharacterizeConfig()
    assert parseOverrideString("characterizeImage:psfIterations=3") == (
        "characterizeImage", "psfIterations", "3")
    applyOverrides(c, [
        ("psfIterations", "3"),
        ("doMeasurePsf", "false"),
        ("threshold", "1e-1"),
        ("radii", "[7, 8]"),
        ("label", "None"),
        ("filterMap", "{g: HSC-G}"),
        ("measurePsf.psfDeterminer.name", "pca"),
        ("measurePsf.psfDeterminer['pca'].nEigenComponents", "5"),
    ])
    assert c.psfIterations == 3 and c.doMeasurePsf is False and c.threshold == 0.1
    assert c.radii == [7, 8] and c.label is None and c.filterMap == {"g": "HSC-G"}
    assert c.measurePsf.psfDeterminer.active.nEigenComponents == 5
    assert c.history["doMeasurePsf"][-1] == (False, "-c")
    with pytest.raises(FieldValidationError, match="psfIterations"):
        applyOverrides(c, [("psfIterations", "three")])
    with pytest.raises(UnknownConfigFieldError, match="did you mean 'doMeasurePsf'"):
        applyOverrides(c, [("doMeasurePSF", "true")])


def test_yaml_overrides(tmp_path):
    path = tmp_path / "over.yaml"
    path.write_text("psfIterations: 3\nmeasurePsf:\n  starSelector:\n    fluxMin: 7\n"
                    "measurePsf.psfDeterminer.name: pca\n")
    c = CharacterizeConfig()
    loadYamlOverrides(c, path)
    assert c.psfIterations == 3 and c.measurePsf.starSelector.fluxMin == 7.0
    assert c.measurePsf.psfDeterminer.name == "pca"
    assert c.history["psfIterations"][-1] == (3, "over.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("psfIterations: 3\nmeasurePsf:\n  starSelectr:\n    fluxMin: 7\n")
    with pytest.raises(UnknownConfigFieldError, match=r"did you mean 'starSelector'.*line 3"):
        loadYamlOverrides(c, bad)


def test_python_overrides(tmp_path):
    path = tmp_path / "over.py"
    path.write_text("config.psfIterations = 5\nconfig.measurePsf.starSelector.fluxMin = 1.5\n")
    c = CharacterizeConfig()
    loadPythonOverrides(c, path)
    assert c.psfIterations == 5 and c.measurePsf.starSelector.fluxMin == 1.5
    assert c.history["psfIterations"][-1] == (5, "over.py")
    bad = tmp_path / "bad.py"
    bad.write_text("config.psfIterations = 4\n\nconfig.psfIteratons = 3\n")
    with pytest.raises(UnknownConfigFieldError, match=r"bad\.py, line 3"):
        loadPythonOverrides(c, bad)
    notpy = tmp_path / "over.txt"
    notpy.write_text("config.psfIterations = 9\n")
    with pytest.raises(ValueError, match="not a .py file"):
        loadPythonOverrides(c, notpy)
    assert c.psfIterations == 4


def test_reserved_field_names():
    with pytest.raises(TypeError, match="reserved"):
        class Bad(Config):
            validate = Field(int, "clashes with a method")
