"""Conformance tests that every registry backend must pass.

Subclass `RegistryTests` in a test module, implement `make_registry` (a new,
empty registry with the default universe) and, for backends that persist,
`reopen` (open the same repository again). pytest collects the subclass if
its name starts with ``Test``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .._errors import (
    CollectionError,
    CollectionTypeError,
    ConflictingDefinitionError,
    DataIdError,
    DataIdValueError,
    DatasetNotFoundError,
    DuplicateDatasetError,
    InvalidNameError,
    MissingCollectionError,
    MissingDatasetTypeError,
    ReadOnlyRegistryError,
)
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastore.stored_file_info import StoredFileInfo
from ..dimensions import DimensionUniverse
from ..expressions import ExpressionSyntaxError, UnknownNameError
from ..registry import CollectionType, Region, SqlRegistry

__all__ = ["RegistryTests"]

DETECTORS = range(4)
VISITS = (10, 11, 12)


def populate(registry: SqlRegistry) -> None:
    """Insert one instrument, two bands and filters, 4 detectors and 3 visits."""
    registry.insert_dimension_records("instrument", [{"name": "Sim", "detector_max": 4}])
    registry.insert_dimension_records("band", [{"name": "g"}, {"name": "r"}])
    registry.insert_dimension_records(
        "physical_filter",
        [
            {"instrument": "Sim", "name": "g1", "band": "g"},
            {"instrument": "Sim", "name": "r1", "band": "r"},
        ],
    )
    registry.insert_dimension_records(
        "detector",
        [{"instrument": "Sim", "id": d, "full_name": f"S{d:02d}"} for d in DETECTORS],
    )
    registry.insert_dimension_records(
        "visit",
        [
            {
                "instrument": "Sim",
                "visit": v,
                "physical_filter": "g1" if v == 10 else "r1",
                "exposure_time": 15.0 * (v - 9),
            }
            for v in VISITS
        ],
    )


class RegistryTests:
    """Tests of the registry API; subclasses say how to make a registry."""

    def make_registry(self) -> SqlRegistry:
        """Return a new, empty registry with the default universe."""
        raise NotImplementedError

    def reopen(self, registry: SqlRegistry, *, writeable: bool = True) -> SqlRegistry | None:
        """Open the repository of ``registry`` again; `None` if the backend cannot."""
        return None

    # -- helpers --------------------------------------------------------------------------

    @property
    def universe(self) -> DimensionUniverse:
        """The default universe, for building expected values."""
        return DimensionUniverse.default()

    def populated(self) -> SqlRegistry:
        """Return a registry with `populate` applied."""
        registry = self.make_registry()
        populate(registry)
        return registry

    def calexp(self, registry: SqlRegistry, name: str = "calexp") -> DatasetType:
        """Register and return a (visit, detector) dataset type."""
        dataset_type = DatasetType.make(name, ["visit", "detector"], "Exposure", registry.universe)
        registry.register_dataset_type(dataset_type)
        return dataset_type

    def refs(self, dataset_type: DatasetType, run: str, **constraint: Any) -> list[DatasetRef]:
        """Return refs of ``dataset_type`` in ``run`` for the given visits and detectors."""
        return [
            DatasetRef.make(dataset_type, {"instrument": "Sim", "visit": v, "detector": d}, run)
            for v in constraint.get("visits", VISITS)
            for d in constraint.get("detectors", DETECTORS)
        ]

    def count_datasets(self, registry: SqlRegistry) -> int:
        """Count the rows of the dataset table directly."""
        with registry.engine.connect() as connection:
            return (
                connection.execute(
                    registry.schema.dataset.select().with_only_columns(registry.schema.dataset.c.id)
                )
                .all()
                .__len__()
            )

    # -- repository ------------------------------------------------------------------------

    def test_universe_stored_and_reopened(self) -> None:
        """The universe and records survive closing and reopening."""
        registry = self.populated()
        assert registry.universe == self.universe
        again = self.reopen(registry)
        if again is None:
            pytest.skip("backend cannot reopen")
        assert again.universe == registry.universe
        assert len(again.query_dimension_records("detector")) == len(DETECTORS)

    def test_read_only(self) -> None:
        """A read-only registry reads but refuses writes."""
        registry = self.populated()
        again = self.reopen(registry, writeable=False)
        if again is None:
            pytest.skip("backend cannot reopen")
        assert len(again.query_dimension_records("detector")) == len(DETECTORS)
        with pytest.raises(ReadOnlyRegistryError):
            again.register_run("run")
        assert again.query_collections() == []

    def test_transaction_rollback_and_savepoint(self) -> None:
        """Errors roll back a transaction, or only the inner SAVEPOINT."""
        registry = self.populated()
        with pytest.raises(RuntimeError):
            with registry.transaction():
                registry.register_run("a")
                raise RuntimeError("boom")
        assert registry.query_collections() == []
        with registry.transaction():
            registry.register_run("b")
            with pytest.raises(RuntimeError):
                with registry.transaction():
                    registry.register_run("c")
                    raise RuntimeError("inner")
        assert [n for n, _ in registry.query_collections()] == ["b"]

    # -- dimension records ---------------------------------------------------------------

    def test_dimension_records_insert_and_query(self) -> None:
        """Records are queried with where, bind values and data IDs."""
        registry = self.populated()
        records = registry.query_dimension_records("detector", where="detector >= 2")
        assert [r["id"] for r in records] == [2, 3]
        assert records[0]["full_name"] == "S02" and records[0]["instrument"] == "Sim"
        visits = registry.query_dimension_records("visit", where="band = 'r'")
        assert [v["id"] for v in visits] == [11, 12]
        assert visits[0]["physical_filter"] == "r1"
        visits = registry.query_dimension_records(
            "visit", where="visit.exposure_time > x", bind={"x": 20.0}
        )
        assert [v["id"] for v in visits] == [11, 12]
        assert registry.query_dimension_records("visit", data_id={"visit": 10})[0]["id"] == 10

    def test_dimension_record_errors(self) -> None:
        """Record errors name the element and field; failed batches leave nothing."""
        registry = self.populated()
        with pytest.raises(DataIdError, match=r"'detector'.*missing key field.*'id'"):
            registry.insert_dimension_records("detector", [{"instrument": "Sim"}])
        with pytest.raises(
            DataIdError, match=r"unknown field 'ful_name'.*did you mean 'full_name'"
        ):
            registry.insert_dimension_records(
                "detector", [{"instrument": "Sim", "id": 9, "ful_name": "x"}]
            )
        with pytest.raises(DataIdValueError, match=r"'detector' field 'id'.*expected int"):
            registry.insert_dimension_records("detector", [{"instrument": "Sim", "id": 1.5}])
        with pytest.raises(DataIdValueError, match=r"'visit' field 'exposure_time'"):
            registry.insert_dimension_records(
                "visit", [{"instrument": "Sim", "id": 1, "exposure_time": "long"}]
            )
        with pytest.raises(DataIdValueError, match=r"'detector'.*missing records of instrument"):
            registry.insert_dimension_records("detector", [{"instrument": "Nope", "id": 1}])
        with pytest.raises(ConflictingDefinitionError, match="'detector'.*already exist"):
            registry.insert_dimension_records(
                "detector", [{"instrument": "Sim", "id": 50}, {"instrument": "Sim", "id": 1}]
            )
        # The failed batch left nothing behind.
        assert len(registry.query_dimension_records("detector")) == len(DETECTORS)
        with pytest.raises(DataIdError, match="did you mean 'detector'"):
            registry.insert_dimension_records("detectr", [{}])

    def test_dimension_records_skip_existing_and_sync(self) -> None:
        """skip_existing and sync_dimension_record."""
        registry = self.populated()
        registry.insert_dimension_records(
            "detector",
            [{"instrument": "Sim", "id": 1}, {"instrument": "Sim", "id": 7}],
            skip_existing=True,
        )
        assert len(registry.query_dimension_records("detector")) == len(DETECTORS) + 1
        record = {"instrument": "Sim", "detector": 8, "full_name": "S08"}
        assert registry.sync_dimension_record("detector", record) is True
        assert registry.sync_dimension_record("detector", record) is False
        with pytest.raises(ConflictingDefinitionError, match=r"full_name: 'S08' != 'X'"):
            registry.sync_dimension_record("detector", {**record, "full_name": "X"})

    # -- dataset types ---------------------------------------------------------------------

    def test_dataset_types(self) -> None:
        """Registration, conflicts, near-miss suggestions and glob queries."""
        registry = self.make_registry()
        calexp = self.calexp(registry)
        assert registry.register_dataset_type(calexp) is False
        assert registry.get_dataset_type("calexp") == calexp
        other = DatasetType.make("calexp", ["visit"], "Exposure", registry.universe)
        with pytest.raises(
            ConflictingDefinitionError, match=r"calexp\(instrument, detector, visit\)"
        ):
            registry.register_dataset_type(other)
        with pytest.raises(MissingDatasetTypeError, match="did you mean 'calexp'"):
            registry.get_dataset_type("calexpp")
        self.calexp(registry, "src")
        self.calexp(registry, "calexp_bkg")
        assert [d.name for d in registry.query_dataset_types("calexp*")] == [
            "calexp",
            "calexp_bkg",
        ]
        assert len(registry.query_dataset_types()) == 3

    # -- collections ---------------------------------------------------------------------

    def test_collections(self) -> None:
        """Runs, chains, cycles, search order and collection queries."""
        registry = self.make_registry()
        assert registry.register_run("u/me/run1") is True
        assert registry.register_run("u/me/run1") is False
        registry.register_run("run2")
        registry.register_collection("chain", CollectionType.CHAINED)
        with pytest.raises(InvalidNameError):
            registry.register_run("../escape")
        with pytest.raises(CollectionTypeError):
            registry.register_run("chain")
        with pytest.raises(MissingCollectionError, match="did you mean 'run2'"):
            registry.get_collection_type("run3")
        registry.set_collection_chain("chain", ["run2", "u/me/run1"])
        assert registry.get_collection_chain("chain") == ("run2", "u/me/run1")
        assert registry.get_collection_type("chain") is CollectionType.CHAINED
        assert registry.query_collections("run*") == [("run2", CollectionType.RUN)]
        assert registry.query_collections(types=[CollectionType.CHAINED]) == [
            ("chain", CollectionType.CHAINED)
        ]
        assert [n for n, _ in registry.query_collections("chain", flatten_chains=True)] == [
            "chain",
            "run2",
            "u/me/run1",
        ]
        registry.register_collection("outer", CollectionType.CHAINED)
        registry.set_collection_chain("outer", ["u/me/run1", "chain"])
        assert registry.resolve_collections("outer") == ["u/me/run1", "run2"]
        assert registry.resolve_collections(["run2", "outer"]) == ["run2", "u/me/run1"]
        with pytest.raises(CollectionError, match="cycle: chain -> outer -> chain"):
            registry.set_collection_chain("chain", ["outer"])
        with pytest.raises(MissingCollectionError):
            registry.set_collection_chain("chain", ["nope"])
        with pytest.raises(CollectionTypeError):
            registry.set_collection_chain("run2", ["chain"])
        assert registry.get_collection_chain("chain") == ("run2", "u/me/run1")

    # -- datasets ------------------------------------------------------------------------------

    def test_insert_find_and_get(self) -> None:
        """Datasets inserted with file infos are found by data ID and ID."""
        registry = self.populated()
        calexp = self.calexp(registry)
        registry.register_run("run")
        refs = self.refs(calexp, "run")
        infos = [StoredFileInfo(r.id, f"run/{r.id}.fits", "F", "Exposure", 10) for r in refs]
        assert registry.insert_datasets(refs, infos) == len(refs)
        found = registry.find_dataset(
            "calexp", {"instrument": "Sim", "visit": "11", "detector": 2}, collections="run"
        )
        assert found == refs[len(DETECTORS) + 2]
        assert found.data_id["visit"] == 11 and found.run == "run"
        assert registry.get_dataset(found.id) == found
        assert registry.get_dataset(found.id).data_id == found.data_id
        assert registry.get_dataset(uuid.uuid4()) is None
        stored = registry.get_stored_info(refs[:3] + [uuid.uuid4()])
        assert stored == {i.dataset_id: i for i in infos[:3]}
        assert (
            registry.find_dataset(
                calexp, {"instrument": "Sim", "visit": 99, "detector": 2}, collections=["run"]
            )
            is None
        )
        with pytest.raises(DataIdError, match="missing required key.*'detector'"):
            registry.find_dataset("calexp", {"instrument": "Sim", "visit": 11}, collections="run")

    def test_insert_conflicts(self) -> None:
        """Same ID again is ignored or refused; a different ID for a data ID is refused."""
        registry = self.populated()
        calexp = self.calexp(registry)
        registry.register_run("run")
        refs = self.refs(calexp, "run")
        registry.insert_datasets(refs[:4])
        assert registry.insert_datasets(refs, on_conflict="ignore") == len(refs) - 4
        with pytest.raises(
            DuplicateDatasetError, match=r"calexp .*already registered in run 'run'"
        ):
            registry.insert_datasets(refs[:1])
        impostor = DatasetRef(calexp, refs[0].data_id, "run", uuid.uuid4())
        with pytest.raises(
            DuplicateDatasetError, match=rf"already holds a dataset calexp.*{impostor.id}"
        ):
            registry.insert_datasets([impostor], on_conflict="ignore")

    def test_failed_bulk_insert_leaves_nothing(self) -> None:
        """A conflict anywhere in a bulk insert rolls back all of it."""
        registry = self.populated()
        calexp = self.calexp(registry)
        registry.register_run("run")
        registry.register_run("other")
        first = self.refs(calexp, "run", visits=[10])
        registry.insert_datasets(first[:1])
        batch = self.refs(calexp, "other") + [
            DatasetRef(calexp, first[0].data_id, "run", uuid.uuid4())
        ]
        with pytest.raises(DuplicateDatasetError):
            registry.insert_datasets(batch)
        assert self.count_datasets(registry) == 1
        with pytest.raises(DuplicateDatasetError, match="given twice"):
            registry.insert_datasets(
                self.refs(calexp, "other")
                + [DatasetRef(calexp, first[0].data_id, "other", uuid.uuid4())]
            )
        assert self.count_datasets(registry) == 1

    def test_insert_requires_registration(self) -> None:
        """Dataset types and RUN collections must exist before inserting."""
        registry = self.populated()
        calexp = DatasetType.make("calexp", ["visit", "detector"], "Exposure", registry.universe)
        registry.register_run("run")
        with pytest.raises(MissingDatasetTypeError, match="'calexp'"):
            registry.insert_datasets(self.refs(calexp, "run"))
        registry.register_dataset_type(calexp)
        with pytest.raises(MissingCollectionError, match="run 'runn' does not exist.*'run'"):
            registry.insert_datasets(self.refs(calexp, "runn"))
        registry.register_collection("chain", CollectionType.CHAINED)
        with pytest.raises(CollectionTypeError, match="'chain'.*not a RUN"):
            registry.insert_datasets(self.refs(calexp, "chain"))
        with pytest.raises(DatasetNotFoundError):
            registry.insert_datasets([], [StoredFileInfo(uuid.uuid4(), "p", "F", "S")])
        # The registry's own checks stand in for foreign keys: a removed run
        # cannot receive datasets, and removing a run leaves no orphans.
        registry.register_run("gone")
        registry.insert_datasets(self.refs(calexp, "gone"))
        registry.remove_run("gone")
        assert self.count_datasets(registry) == 0
        with pytest.raises(MissingCollectionError, match="run 'gone' does not exist"):
            registry.insert_datasets(self.refs(calexp, "gone"))
        assert self.count_datasets(registry) == 0

    def test_infos_paired_by_position_or_id(self) -> None:
        """One info per ref, in ref order or not: each ref gets its own."""
        registry = self.populated()
        calexp = self.calexp(registry)
        registry.register_run("run")
        refs = self.refs(calexp, "run")
        infos = [StoredFileInfo(r.id, f"f/{i}", "F", "Exposure", i) for i, r in enumerate(refs)]
        registry.insert_datasets(refs[:2], infos[:2])  # by position
        infos[2], infos[-1] = infos[-1], infos[2]  # same length, not in order: by ID
        registry.insert_datasets(refs[2:], infos[2:])
        assert registry.get_stored_info(refs) == {i.dataset_id: i for i in infos}

    def test_chained_search_order(self) -> None:
        """find_dataset and query_datasets follow the chain's order."""
        registry = self.populated()
        calexp = self.calexp(registry)
        for run in ("old", "new"):
            registry.register_run(run)
        registry.insert_datasets(self.refs(calexp, "old"))
        registry.insert_datasets(self.refs(calexp, "new", visits=[11]))
        registry.register_collection("chain", CollectionType.CHAINED)
        registry.set_collection_chain("chain", ["new", "old"])
        data_id = {"instrument": "Sim", "visit": 11, "detector": 1}
        assert registry.find_dataset("calexp", data_id, collections="chain").run == "new"
        assert registry.find_dataset("calexp", data_id, collections=["old", "new"]).run == "old"
        first = registry.query_datasets("calexp", collections="chain")
        assert len(first) == len(VISITS) * len(DETECTORS)
        assert {r.run for r in first if r.data_id["visit"] == 11} == {"new"}
        assert {r.run for r in first if r.data_id["visit"] != 11} == {"old"}
        everything = registry.query_datasets("calexp", collections="chain", find_first=False)
        assert len(everything) == len(first) + len(DETECTORS)

    def test_query_datasets_where(self) -> None:
        """Where expressions over keys, implied dimensions and record fields."""
        registry = self.populated()
        calexp = self.calexp(registry)
        registry.register_run("run")
        registry.insert_datasets(self.refs(calexp, "run"))
        refs = registry.query_datasets(
            "calexp", collections="run", where="visit IN (10..11) AND detector < 2"
        )
        # Sorted by data ID in canonical order (instrument, detector, visit).
        assert [(r.data_id["detector"], r.data_id["visit"]) for r in refs] == [
            (0, 10),
            (0, 11),
            (1, 10),
            (1, 11),
        ]
        refs = registry.query_datasets(
            "calexp",
            collections="run",
            where="band = b AND visit.exposure_time > 20",
            bind={"b": "r"},
            data_id={"detector": 3},
        )
        assert sorted(r.data_id["visit"] for r in refs) == [11, 12]
        refs = registry.query_datasets(
            "calexp", collections="run", where="detector.full_name = 'S01'"
        )
        assert {r.data_id["detector"] for r in refs} == {1}
        with pytest.raises(UnknownNameError, match="did you mean 'visit'"):
            registry.query_datasets("calexp", collections="run", where="visits = 3")
        with pytest.raises(DataIdError, match="'detectr'"):
            registry.query_datasets("calexp", collections="run", data_id={"detectr": 3})

    def test_sql_injection_is_inert(self) -> None:
        """Hostile text in where and bind values is data, never SQL."""
        registry = self.populated()
        calexp = self.calexp(registry)
        registry.register_run("run")
        registry.insert_datasets(self.refs(calexp, "run"))
        hostile = "Sim'; DROP TABLE dataset; --"
        assert (
            registry.query_datasets(
                "calexp", collections="run", where="instrument = x", bind={"x": hostile}
            )
            == []
        )
        assert (
            registry.query_datasets(
                "calexp", collections="run", where="instrument = 'Sim''; DROP TABLE dataset; --'"
            )
            == []
        )
        with pytest.raises(ExpressionSyntaxError):
            registry.query_datasets(
                "calexp", collections="run", where="visit = 1; DROP TABLE dataset"
            )
        assert (
            registry.query_dimension_records(
                "detector", where="detector.full_name = x", bind={"x": "' OR 1=1 --"}
            )
            == []
        )
        assert self.count_datasets(registry) == len(VISITS) * len(DETECTORS)
        assert len(registry.query_dimension_records("detector")) == len(DETECTORS)

    def test_remove(self) -> None:
        """Removing datasets and runs returns their file infos and updates chains."""
        registry = self.populated()
        calexp = self.calexp(registry)
        registry.register_run("run")
        registry.register_run("keep")
        registry.register_collection("chain", CollectionType.CHAINED)
        registry.set_collection_chain("chain", ["run", "keep"])
        refs = self.refs(calexp, "run")
        infos = [StoredFileInfo(r.id, f"{r.id}.fits", "F", "Exposure") for r in refs]
        registry.insert_datasets(refs, infos)
        registry.insert_datasets(self.refs(calexp, "keep"))
        removed = registry.remove_datasets(refs[:2])
        assert sorted(i.dataset_id for i in removed) == sorted(r.id for r in refs[:2])
        assert registry.get_dataset(refs[0].id) is None
        removed = registry.remove_run("run")
        assert len(removed) == len(refs) - 2
        assert registry.get_collection_chain("chain") == ("keep",)
        with pytest.raises(MissingCollectionError):
            registry.get_collection_type("run")
        assert self.count_datasets(registry) == len(refs)

    def test_tagged_collections(self) -> None:
        """Associate, search (directly, in a chain, with where), disassociate, remove."""
        registry = self.populated()
        calexp = self.calexp(registry)
        for run in ("old", "new"):
            registry.register_run(run)
        old = self.refs(calexp, "old")
        new = self.refs(calexp, "new", visits=[11])
        registry.insert_datasets(old)
        registry.insert_datasets(new)
        assert registry.register_collection("best", CollectionType.TAGGED) is True
        assert registry.get_collection_type("best") is CollectionType.TAGGED
        # the best of each data ID: visit 11 from "new", the rest from "old"
        chosen = [r for r in old if r.data_id["visit"] != 11] + new
        assert registry.associate("best", chosen) == len(chosen)
        assert registry.associate("best", chosen[:3]) == 0  # already there: skipped
        found = registry.query_datasets("calexp", collections="best")
        assert sorted(r.id for r in found) == sorted(r.id for r in chosen)
        assert {r.run for r in found} == {"old", "new"}  # refs keep their own runs
        assert found == sorted(chosen, key=lambda r: tuple(r.data_id.required.values()))
        data_id = {"instrument": "Sim", "visit": 11, "detector": 1}
        assert registry.find_dataset("calexp", data_id, collections="best").run == "new"
        where = registry.query_datasets("calexp", collections="best", where="visit = 10")
        assert {r.data_id["visit"] for r in where} == {10} and len(where) == len(DETECTORS)
        # another dataset of a data ID the collection holds is refused
        clash = next(r for r in old if r.data_id["visit"] == 11)
        with pytest.raises(ConflictingDefinitionError, match="disassociate it first"):
            registry.associate("best", [clash])
        with pytest.raises(DatasetNotFoundError):
            registry.associate("best", [uuid.uuid4()])
        with pytest.raises(CollectionTypeError, match="not TAGGED"):
            registry.associate("old", new)
        # a chain can hold it; search order across TAGGED and RUN collections
        registry.register_collection("chain", CollectionType.CHAINED)
        registry.set_collection_chain("chain", ["best", "old"])
        in_chain = registry.query_datasets("calexp", collections="chain")
        assert sorted(r.id for r in in_chain) == sorted(r.id for r in chosen)
        registry.set_collection_chain("chain", ["old", "best"])
        assert {r.run for r in registry.query_datasets("calexp", collections="chain")} == {"old"}
        everything = registry.query_datasets("calexp", collections="chain", find_first=False)
        assert len(everything) == len(old) + len(new)
        ids = registry.query_data_ids(["visit"], datasets=["calexp"], collections="best")
        assert [i["visit"] for i in ids] == list(VISITS)
        # disassociate: gone from the collection, still in its run
        assert registry.disassociate("best", new) == len(new)
        assert registry.disassociate("best", new) == 0
        assert registry.find_dataset("calexp", data_id, collections="best") is None
        assert registry.find_dataset("calexp", data_id, collections="new").id == new[1].id
        # removing a tagged dataset removes its tag; removing the collection keeps datasets
        registry.remove_datasets([chosen[0]])
        assert len(registry.query_datasets("calexp", collections="best")) == len(chosen) - 1 - len(
            new
        )
        registry.set_collection_chain("chain", ["old"])
        registry.remove_collection("best")
        with pytest.raises(MissingCollectionError):
            registry.get_collection_type("best")
        assert self.count_datasets(registry) == len(old) + len(new) - 1

    def test_store_info(self) -> None:
        """File infos recorded after registration."""
        registry = self.populated()
        calexp = self.calexp(registry)
        registry.register_run("run")
        refs = self.refs(calexp, "run", visits=[10])
        registry.insert_datasets(refs)
        assert registry.get_stored_info(refs) == {}
        info = StoredFileInfo(refs[0].id, "a.fits", "F", "Exposure", 5)
        registry.store_info([info])
        assert registry.get_stored_info(refs) == {refs[0].id: info}
        with pytest.raises(DatasetNotFoundError):
            registry.store_info([StoredFileInfo(uuid.uuid4(), "b", "F", "E")])

    # -- data ID queries and spatial joins -----------------------------------------------------

    def test_query_data_ids(self) -> None:
        """Data IDs from record joins, constrained by datasets and data IDs."""
        registry = self.populated()
        ids = registry.query_data_ids(["visit", "detector"], where="band = 'g'")
        assert len(ids) == len(DETECTORS) and {i["visit"] for i in ids} == {10}
        assert ids[0].implied == {"physical_filter": "g1", "band": "g"}
        registry.insert_dimension_records("visit", [{"instrument": "Sim", "id": 13}])
        ids = registry.query_data_ids(["visit"])
        assert [i["visit"] for i in ids] == [*VISITS, 13]  # no filter: kept, implied unknown
        assert ids[-1].implied == {}
        calexp = self.calexp(registry)
        registry.register_run("run")
        registry.insert_datasets(self.refs(calexp, "run", visits=[11], detectors=[1, 2]))
        ids = registry.query_data_ids(["detector"], datasets=["calexp"], collections="run")
        assert [i["detector"] for i in ids] == [1, 2]
        ids = registry.query_data_ids(["visit"], data_id={"instrument": "Sim", "visit": 12})
        assert [dict(i.required) for i in ids] == [{"instrument": "Sim", "visit": 12}]

    def test_spatial_join(self) -> None:
        """Regions give sky-pixel overlaps; skypix joins through visit_detector_region."""
        registry = self.populated()
        skypix = registry.universe.skypix.name
        regions = {}
        for v in VISITS:
            for d in DETECTORS:
                ra, dec = 10.0 + 0.3 * d, -5.0 + 0.01 * (v - 10)
                region = Region.polygon(
                    [(ra, dec), (ra + 0.2, dec), (ra + 0.2, dec + 0.2), (ra, dec + 0.2)]
                )
                registry.insert_dimension_records(
                    "visit_detector_region", [{"instrument": "Sim", "visit": v, "detector": d}]
                )
                registry.set_region(
                    "visit_detector_region",
                    {"instrument": "Sim", "visit": v, "detector": d},
                    region,
                )
                regions[v, d] = region
        assert (
            registry.get_region(
                "visit_detector_region", {"instrument": "Sim", "visit": 10, "detector": 1}
            )
            == regions[10, 1]
        )
        assert registry.get_region("visit", {"instrument": "Sim", "visit": 10}) is None
        ids = registry.query_data_ids(
            ["visit", "detector", skypix], where="visit = 10 AND detector = 2"
        )
        assert {i[skypix] for i in ids} == regions[10, 2].skypix_overlaps(registry.universe)
        # A reference catalog sharded by sky pixel: which shards overlap each detector?
        refcat = DatasetType.make("refcat", [skypix], "Catalog", registry.universe)
        registry.register_dataset_type(refcat)
        registry.register_run("refcats")
        pixels = sorted(regions[10, 0].skypix_overlaps(registry.universe))
        registry.insert_datasets([DatasetRef.make(refcat, {skypix: p}, "refcats") for p in pixels])
        ids = registry.query_data_ids(
            ["visit", "detector", skypix],
            datasets=["refcat"],
            collections="refcats",
            where="visit = 10",
        )
        assert {i[skypix] for i in ids} == set(pixels)
        assert (10, 0) in {(i["visit"], i["detector"]) for i in ids}
        assert all(
            regions[i["visit"], i["detector"]].skypix_overlaps(registry.universe) & set(pixels)
            for i in ids
        )
        with pytest.raises(DataIdError, match="not spatial"):
            registry.set_region("detector", {"instrument": "Sim", "detector": 1}, regions[10, 0])
        with pytest.raises(DataIdValueError, match="no record"):
            registry.set_region("visit", {"instrument": "Sim", "visit": 99}, regions[10, 0])
        with pytest.raises(DataIdError, match=f"cannot enumerate {skypix}"):
            registry.query_data_ids([skypix])
