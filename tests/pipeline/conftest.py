"""Make the test helper module ``trivial_tasks`` importable by its dotted name."""

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))


@pytest.fixture
def data_dir() -> Path:
    return _HERE / "data"
