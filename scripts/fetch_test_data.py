"""Install the real test images that only a source distribution carries (run at install time).

The sep source distribution holds a real 256² ESO/EMMI frame with SExtractor's background, RMS
map, catalog and configuration (``data/``); the sep wheel does not. This script downloads the
sep sdist through pip (the package registry, at install time: the tests download nothing) and
unpacks those files into ``<venv>/share/skyquanta-test-data/sep/``, where
``tests/imaging/_raws.sep_data_dir`` finds them. Without them the EMMI tests are skipped with a
reason. ``make .venv/.installed`` runs it; run ``.venv/bin/python scripts/fetch_test_data.py``
for an existing venv. Already there: nothing is done.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

#: sep version whose sdist is fetched when sep is not installed (its data files never change).
DEFAULT_SEP_VERSION = "1.4.1"
#: Files taken from the sdist's ``data/`` directory.
SEP_FILES = ("image.fits", "back.fits", "rms.fits", "image.cat", "default.sex", "README.md")


def target_dir() -> Path:
    """Where the files go: ``<sys.prefix>/share/skyquanta-test-data/sep``."""
    return Path(sys.prefix) / "share" / "skyquanta-test-data" / "sep"


def fetch_sep_data(target: Path) -> None:
    """Download the sep sdist with pip and unpack `SEP_FILES` into ``target`` (atomically)."""
    try:
        version = metadata.version("sep")
    except metadata.PackageNotFoundError:
        version = DEFAULT_SEP_VERSION
    target.parent.mkdir(parents=True, exist_ok=True)
    # the staging directory sits next to the target, so the final rename stays on one disk
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", "sep", f"sep=={version}", "--dest", tmp],
            check=True,
        )
        sdist = next(Path(tmp).glob("sep-*.tar.gz"))
        staging = Path(tmp) / "data"
        staging.mkdir()
        with tarfile.open(sdist) as tar:
            for name in SEP_FILES:
                member = tar.getmember(f"{sdist.name[: -len('.tar.gz')]}/data/{name}")
                source = tar.extractfile(member)
                if source is None:
                    raise RuntimeError(f"{sdist.name}: data/{name} is not a file")
                (staging / name).write_bytes(source.read())
        (staging / "VERSION").write_text(version + "\n")
        staging.replace(target)


def main() -> int:
    """Fetch the files unless present; 0 when they are there, 1 (one line said) if not."""
    target = target_dir()
    if all((target / name).is_file() for name in SEP_FILES):
        print(f"fetch_test_data: sep's EMMI frame already in {target}")
        return 0
    try:
        fetch_sep_data(target)
    except (subprocess.CalledProcessError, OSError, KeyError, StopIteration, RuntimeError) as err:
        print(f"fetch_test_data: sep's EMMI frame not installed ({err}); its tests will skip")
        return 1
    print(f"fetch_test_data: sep's EMMI frame installed in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
