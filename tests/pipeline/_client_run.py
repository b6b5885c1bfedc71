"""Run a graph as a separate client process (killed by test_resume)."""

import sys

from butler import Butler
from pipeline.execution.run import execute_graph
from pipeline.graph.quantum_graph import QuantumGraph

repo, graph = sys.argv[1], sys.argv[2]
summary = execute_graph(Butler(repo), QuantumGraph.load(graph), executor="sync", progress=False)
sys.exit(summary.exit_code)
