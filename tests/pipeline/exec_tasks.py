"""PipelineTasks for the execution tests (imported by dotted name ``exec_tasks``).

ExecA per (instrument, visit, detector) reads ``raw`` and writes ``ea_out``; ExecB reads
``ea_out`` and writes ``eb_out``; ExecC gathers a visit's ``eb_out`` into ``ec_out``. All outputs
are tiny YAML dicts whose bytes depend only on the data. Behaviour is driven by files, so a
test can change it between runs without touching the graph:

- ``failFile``: if it exists and lists ``visit,detector`` on a line, that quantum raises
  (``RepeatableQuantumError`` when ``repeatable``);
- ``killFile``: if it exists, the quantum deletes it and SIGKILLs its own process (once);
- ``sleep``: seconds to sleep in ``run`` (to kill things mid-run), in 0.05 s steps, or in one
  uninterruptible call with ``sleepBlocking``; with ``sleepFile``, only the quanta it lists
  (``visit,detector`` lines) sleep;
- ``holdFile``: the quanta listed in ``sleepFile`` wait while this file exists (0.05 s
  steps), after appending their key to ``<holdFile>.held``; once it is gone they append
  their key to ``<holdFile>.woke`` and go on;
- ``noWorkDetectors``: detectors for which ExecA raises ``NoWorkFound``;
- ``failAfterPut``: ExecB writes its output, then raises;
- ``pidFile``: each quantum appends the id of the process running it (where it ran) and of
  that process's parent, as a ``pid parent`` line;
- ``padBytes``: ExecA's output also holds a string of that many characters (to fill a disk).
"""

import os
import signal
import time

from pipeline._errors import NoWorkFound, RepeatableQuantumError
from pipeline.config import Field, ListField
from pipeline.connections import InitOutput, Input, Output, PipelineTaskConnections
from pipeline.pipeline_task import PipelineTask, PipelineTaskConfig
from pipeline.struct import Struct

VISIT_DET = ("instrument", "visit", "detector")
VISIT = ("instrument", "visit")


class BehaviourConfig(PipelineTaskConfig):
    failFile = Field(str, "file listing 'visit,detector' lines that fail", default="")
    repeatable = Field(bool, "fail with RepeatableQuantumError", default=False)
    killFile = Field(str, "if this file exists: delete it and SIGKILL own process", default="")
    sleep = Field(float, "seconds to sleep per quantum", default=0.0)
    sleepFile = Field(str, "if set: only the quanta it lists ('visit,detector') sleep", default="")
    sleepBlocking = Field(bool, "sleep in one call instead of 0.05 s steps", default=False)
    pidFile = Field(str, "append the id of the process running the quantum here", default="")
    holdFile = Field(str, "the sleepFile quanta wait while this file exists", default="")


def _lines(path):
    if not os.path.exists(path):
        return set()
    with open(path) as stream:
        return {line.strip() for line in stream if line.strip()}


def _append(path, line):
    with open(path, "a") as stream:
        stream.write(line + "\n")


def _behave(config, data_id, log):
    if config.pidFile:
        with open(config.pidFile, "a") as stream:
            stream.write(f"{os.getpid()} {os.getppid()}\n")
    key = f"{data_id['visit']},{data_id.get('detector', '')}".rstrip(",")
    if config.holdFile and key in _lines(config.sleepFile):
        _append(config.holdFile + ".held", key)
        while os.path.exists(config.holdFile):
            time.sleep(0.05)
        _append(config.holdFile + ".woke", key)
    if config.sleep and (not config.sleepFile or key in _lines(config.sleepFile)):
        if config.sleepBlocking:
            time.sleep(config.sleep)
        else:
            end = time.monotonic() + config.sleep
            while time.monotonic() < end:
                time.sleep(0.05)
    if config.killFile and os.path.exists(config.killFile):
        os.remove(config.killFile)
        log.warning("killing my own process %d", os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)
    if config.failFile and os.path.exists(config.failFile):
        if key in _lines(config.failFile):
            cls = RepeatableQuantumError if config.repeatable else RuntimeError
            raise cls(f"injected failure for {key}")


class AConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("raw", "StructuredDataDict", VISIT_DET)
    out = Output("ea_out", "StructuredDataDict", VISIT_DET)


class AConfig(BehaviourConfig, pipelineConnections=AConnections):
    noWorkDetectors = ListField(int, "detectors with nothing to do", default=[])
    padBytes = Field(int, "length of a padding string in the output", default=0)


class ExecA(PipelineTask):
    ConfigClass = AConfig
    _DefaultName = "execA"

    def runQuantum(self, butlerQC, inputRefs, outputRefs):
        self.dataId = butlerQC.dataId
        if butlerQC.dataId["detector"] in self.config.noWorkDetectors:
            raise NoWorkFound(f"detector {butlerQC.dataId['detector']} has nothing")
        super().runQuantum(butlerQC, inputRefs, outputRefs)

    def run(self, inp):
        _behave(self.config, self.dataId, self.log)
        self.log.info("A on %s", self.dataId)
        self.metadata["value"] = inp["value"]
        out = {"value": inp["value"] * 2}
        if self.config.padBytes:
            out["pad"] = "x" * self.config.padBytes
        return Struct(out=out)


class BConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("ea_out", "StructuredDataDict", VISIT_DET)
    out = Output("eb_out", "StructuredDataDict", VISIT_DET)


class BConfig(BehaviourConfig, pipelineConnections=BConnections):
    offset = Field(int, "added to the value", default=1)
    failAfterPut = Field(bool, "write the output, then raise", default=False)


class ExecB(PipelineTask):
    ConfigClass = BConfig
    _DefaultName = "execB"

    def runQuantum(self, butlerQC, inputRefs, outputRefs):
        self.dataId = butlerQC.dataId
        super().runQuantum(butlerQC, inputRefs, outputRefs)
        if self.config.failAfterPut:
            raise RuntimeError(f"failing after writing the output of {self.dataId}")

    def run(self, inp):
        _behave(self.config, self.dataId, self.log)
        return Struct(out={"value": inp["value"] + self.config.offset})


class CConnections(PipelineTaskConnections, dimensions=VISIT):
    inp = Input("eb_out", "StructuredDataDict", VISIT_DET, multiple=True)
    out = Output("ec_out", "StructuredDataDict", VISIT)


class CConfig(BehaviourConfig, pipelineConnections=CConnections):
    pass


class ExecC(PipelineTask):
    ConfigClass = CConfig
    _DefaultName = "execC"

    def runQuantum(self, butlerQC, inputRefs, outputRefs):
        self.dataId = butlerQC.dataId
        super().runQuantum(butlerQC, inputRefs, outputRefs)

    def run(self, inp):
        _behave(self.config, self.dataId, self.log)
        return Struct(out={"values": sorted(x["value"] for x in inp), "n": len(inp)})


class NoopConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("raw", "StructuredDataDict", VISIT_DET)
    out = Output("noop_out", "StructuredDataDict", VISIT_DET)


class NoopConfig(PipelineTaskConfig, pipelineConnections=NoopConnections):
    pass


class Noop(PipelineTask):
    """Trivial quanta for the overhead measurement."""

    ConfigClass = NoopConfig
    _DefaultName = "noop"

    def run(self, inp):
        return Struct(out=inp)


class SConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("raw", "StructuredDataDict", VISIT_DET)
    out = Output("es_out", "StructuredDataDict", VISIT_DET)
    schema = InitOutput("es_schema", "StructuredDataDict")


class SConfig(PipelineTaskConfig, pipelineConnections=SConnections):
    schemaFile = Field(str, "the init-output holds this file's lines (read at init)", default="")


class ExecS(PipelineTask):
    """Writes an init-output whose content comes from a file (a schema that changes with the
    software, not with the config)."""

    ConfigClass = SConfig
    _DefaultName = "execS"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        columns = []
        if self.config.schemaFile and os.path.exists(self.config.schemaFile):
            with open(self.config.schemaFile) as stream:
                columns = [line.strip() for line in stream if line.strip()]
        self.schema = {"columns": columns}

    def run(self, inp):
        return Struct(out={"value": inp["value"], "columns": self.schema["columns"]})
