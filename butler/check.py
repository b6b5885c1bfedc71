"""Checking a whole repository: the registry against the files (``butler check``).

Design
------
Four kinds of problem are found, in one pass over the registry's stored-file
records and one walk of the datastore:

- ``missing``: a registered dataset's file (or directory) is not there;
- ``size`` / ``checksum``: it is there but is not what was stored (its size
  differs from the recorded one, or its recorded checksum does not match);
- ``orphan``: a file inside the butler's dataset directories that no dataset
  owns (left by a crashed writer, a removed run, or copied in by hand);
- ``temporary``: a ``.<name>.tmp-<hex>`` file or directory left by an
  interrupted atomic write.

The butler's dataset directories are the top-level folders of the datastore
root that hold a RUN's files (the first component of every RUN name and of
every registered file's path). Files elsewhere under the root (the registry
database, ``butler.yaml``, a simulator's truth tables) are not the butler's
and are never reported or removed.

Checking reads, and never changes anything. With ``fix``, orphans and
temporaries are removed (never a registered file, whatever its state: a
missing, truncated or damaged dataset needs a person to decide). Only fix a
repository no process is writing to: an in-progress write is
indistinguishable from a leftover.

State: none; `check_repository` returns a `RepositoryCheck`.
"""

from __future__ import annotations

import dataclasses
import posixpath

from ._errors import ArtifactChecksumError, ArtifactIntegrityError, ArtifactNotFoundError
from .butler import Butler
from .datastore._atomic import discard
from .registry import CollectionType

__all__ = ["PROBLEM_KINDS", "Problem", "RepositoryCheck", "check_repository"]

#: Problem kinds in the order they are reported; the last two are what ``fix`` removes.
PROBLEM_KINDS = ("missing", "size", "checksum", "orphan", "temporary")


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a repository.

    Parameters
    ----------
    kind : `str`
        One of `PROBLEM_KINDS`.
    path : `str`
        The artifact, relative to the datastore root (absolute for ``direct`` ingests).
    dataset : `str`
        ``<dataset type> <data ID> in <run>``, or "" for files no dataset owns.
    detail : `str`
        What is wrong, in words.
    """

    kind: str
    path: str
    dataset: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class RepositoryCheck:
    """What `check_repository` found (and removed).

    Parameters
    ----------
    artifacts : `int`
        Registered artifacts checked.
    checksums : `int`
        Of those, how many had their checksum verified.
    problems : `tuple` [`Problem`, ...]
        Everything wrong, in `PROBLEM_KINDS` order, then by path.
    removed : `tuple` [`str`, ...]
        Orphans and temporaries removed by ``fix`` (relative paths).
    """

    artifacts: int
    checksums: int
    problems: tuple[Problem, ...]
    removed: tuple[str, ...] = ()

    @property
    def remaining(self) -> tuple[Problem, ...]:
        """The problems still there (all but what ``fix`` removed)."""
        gone = set(self.removed)
        return tuple(p for p in self.problems if p.path not in gone)

    def counts(self) -> dict[str, int]:
        """Return the number of problems of each kind (every kind, zeros included)."""
        return {kind: sum(p.kind == kind for p in self.problems) for kind in PROBLEM_KINDS}


def check_repository(
    butler: Butler, *, verify_checksums: bool = True, fix: bool = False
) -> RepositoryCheck:
    """Check every registered artifact against its record, and look for files no dataset owns.

    Parameters
    ----------
    butler : `Butler`
        The repository (read-only is enough unless ``fix``).
    verify_checksums : `bool`
        Verify recorded checksums (reads every byte of those artifacts); sizes are always
        compared.
    fix : `bool`
        Remove orphans and temporaries. Registered files are never touched.

    Returns
    -------
    check : `RepositoryCheck`
    """
    datastore = butler.datastore
    problems: list[Problem] = []
    known: set[str] = set()
    tops: set[str] = set()
    artifacts = verified = 0
    for run, dataset_type, data_id, info in butler.registry.stored_artifacts():
        artifacts += 1
        dataset = f"{dataset_type} {data_id} in {run}"
        if not posixpath.isabs(info.path) and "://" not in info.path:
            known.add(info.path)
            tops.add(info.path.split("/", 1)[0])
        checking = verify_checksums and info.checksum is not None
        try:
            datastore.check_artifact(info, "the artifact", checksum=checking)
            verified += checking
        except ArtifactNotFoundError:
            problems.append(Problem("missing", info.path, dataset, "registered but not there"))
        except ArtifactIntegrityError as err:
            kind = "checksum" if isinstance(err, ArtifactChecksumError) else "size"
            detail = str(err).split(" ('butler check'", 1)[0]
            problems.append(Problem(kind, info.path, dataset, detail))
    for run, _ in butler.registry.query_collections(types=[CollectionType.RUN]):
        tops.add(run.split("/", 1)[0])
    ours = {top for top in tops if top and not top.startswith(".")}
    for path in datastore.find_orphans(known):
        if path.split("/", 1)[0] in ours and "/" in path:
            problems.append(Problem("orphan", path, "", "no dataset owns it"))
    for path in datastore.find_temporaries():
        problems.append(Problem("temporary", path, "", "left by an interrupted write"))
    problems.sort(key=lambda p: (PROBLEM_KINDS.index(p.kind), p.path))
    removed: list[str] = []
    if fix:
        for problem in problems:
            if problem.kind in ("orphan", "temporary"):
                discard(datastore.fs, posixpath.join(datastore.root, problem.path))
                removed.append(problem.path)
    return RepositoryCheck(artifacts, verified, tuple(problems), tuple(removed))

