from types import SimpleNamespace

import pytest

from pipeline._errors import ContractError
from pipeline.definition.contracts import check_contract, contract_labels, evaluate_contract

CONFIGS = {
    "calibrate": SimpleNamespace(doAstrometry=False, nStars=10, bands=["g", "r"]),
    "charImage": SimpleNamespace(
        connections=SimpleNamespace(outputSchema="icSrc_schema"), threshold=5.0
    ),
}


def test_lsst_style_contract_true():
    text = "calibrate.doAstrometry == False or charImage.connections.outputSchema == 'icSrc_schema'"
    assert evaluate_contract(text, CONFIGS) is True
    check_contract(text, CONFIGS)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("calibrate.nStars * 2 + 1 == 21", True),
        ("calibrate.nStars / 4 > 2.4", True),
        ("calibrate.nStars - 11 == -1", True),
        ("not calibrate.doAstrometry", True),
        ("'g' in calibrate.bands and 'z' not in calibrate.bands", True),
        ("calibrate.bands == ['g', 'r']", True),
        ("(1, 2) == (1, 2)", True),
        ("0 < calibrate.nStars < 5", False),
        ("charImage.threshold >= 5 and calibrate.doAstrometry", False),
        ("calibrate.bands[1] == 'r'", True),
        ("calibrate.doAstrometry is False", True),
    ],
)
def test_expressions(text, expected):
    assert bool(evaluate_contract(text, CONFIGS)) is expected


def test_failed_contract_names_text_and_msg():
    with pytest.raises(
        ContractError,
        match=r"pipe.yaml:7: contract 'calibrate.nStars > 100' "
        r"failed: need many stars",
    ):
        check_contract(
            "calibrate.nStars > 100", CONFIGS, msg="need many stars", where="pipe.yaml:7"
        )


@pytest.mark.parametrize(
    "text, construct",
    [
        ("__import__('os')", "Call"),
        ("calibrate.nStars.__class__", "private attribute"),
        ("[x for x in calibrate.bands]", "ListComp"),
        ("(lambda: 1)()", "Call"),
        ("calibrate.nStars ** 2 == 100", "Pow"),
        ("calibrate.nStars if True else 1", "IfExp"),
        ("{'a': 1}", "Dict"),
    ],
)
def test_forbidden_constructs(text, construct):
    with pytest.raises(ContractError, match=construct):
        evaluate_contract(text, CONFIGS)


def test_call_is_not_executed(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ContractError, match="Call"):
        evaluate_contract(f"open({str(marker)!r}, 'w')", CONFIGS)
    assert not marker.exists()


def test_unknown_label_and_field():
    with pytest.raises(ContractError, match=r"unknown name 'calib'.*calibrate"):
        evaluate_contract("calib.doAstrometry", CONFIGS)
    with pytest.raises(ContractError, match=r"has no field 'doAstrometri'"):
        evaluate_contract("calibrate.doAstrometri", CONFIGS)


def test_syntax_error():
    with pytest.raises(ContractError, match="not a valid expression"):
        evaluate_contract("calibrate.nStars ==", CONFIGS)


def test_contract_labels():
    assert contract_labels("a.x == 1 and b.c.d > e.f") == {"a", "b", "e"}
