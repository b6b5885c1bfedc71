"""A TAGGED collection as the input of ``pipetask run`` (an LSST habit: a hand-picked input
set): the graph holds exactly the tagged datasets, read from their own run."""

from __future__ import annotations

from _exec_repo import make_repo, pipeline_yaml, registered
from click.testing import CliRunner

from butler import Butler
from butler.registry import CollectionType
from pipeline.cli import main as pipetask_main


def test_pipeline_reads_a_tagged_input_collection(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=3)
    butler = Butler(repo)
    picked = butler.query_datasets("raw", collections="raw/all", where="detector IN (0, 2)")
    butler.registry.register_collection("picked", CollectionType.TAGGED)
    assert butler.registry.associate("picked", picked) == 4
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(tasks=("a", "b")))
    result = CliRunner().invoke(pipetask_main, [
        "run", "-b", str(repo), "-p", str(pipe), "-i", "picked", "--output-run", "u/tag",
        "--executor", "sync", "--no-progress"])
    assert result.exit_code == 0, result.output
    made = registered(Butler(repo, writeable=False), "u/tag")
    ids = {(dict(k)["visit"], dict(k)["detector"]) for k in made["eb_out"]}
    assert ids == {(0, 0), (0, 2), (1, 0), (1, 2)}
    value = Butler(repo, writeable=False).get("eb_out", instrument="Sim", visit=1, detector=2,
                                              collections="u/tag")
    assert value == {"value": 2 * 102 + 1}  # ExecA doubles raw (visit 1, detector 2), B adds 1
