"""Run a graph as a separate client process (killed by test_resume)."""

import sys

from butler import Butler
from pipeline.quantum_graph import QuantumGraph
from pipeline.run import execute_graph

repo, graph = sys.argv[1], sys.argv[2]
summary = execute_graph(Butler(repo), QuantumGraph.load(graph), executor="sync", progress=False)
sys.exit(summary.exit_code)
