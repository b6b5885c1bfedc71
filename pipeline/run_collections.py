"""The collections of a ``pipetask`` run: its output RUN, the CHAINED output, the inputs.

LSST's rules, which `resolve_run_collections` applies:

- ``-o OUT`` names a CHAINED collection. A new run (``--output-run``, default
  ``OUT/<timestamp with microseconds>-<random tag>``, so runs started at once never share
  a name) is *prepended* to OUT (under a row lock: concurrent runs both stay in it):
  ``[new run, OUT's children as they were, then any ``-i`` input not yet in it]``, so the
  outputs of earlier runs stay visible behind it.
- ``--extend-run`` (and ``--resume``) runs into OUT's first child instead.
- The inputs are ``-i``, else OUT's current children (earlier runs included).
- ``-g saved.qgraph``: the graph decides. The run is the graph's own output run and the inputs
  are the graph's input collections; ``-o`` is optional (then OUT points at the graph's run,
  followed by what OUT held and the graph's inputs); an ``--output-run`` other than the
  graph's run is refused.

Nothing is written by `resolve_run_collections`. `RunCollections.apply` registers the run and
sets the chain; `RunCollections.undo` takes back exactly what `apply` made (a new run with what
this invocation wrote into it, a new chain, or the chain's previous children) when the run
could not start, so a refused run leaves the repository as it found it.
"""

from __future__ import annotations

import dataclasses
import datetime
import secrets
from collections.abc import Sequence
from typing import Any

from butler._errors import CollectionTypeError, MissingCollectionError
from butler.registry import CollectionType

__all__ = ["RunCollections", "RunCollectionsError", "resolve_run_collections"]


class RunCollectionsError(MissingCollectionError):
    """The output, run and input options of a run do not fit together."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunCollections:
    """Resolved collections of one run, and what existed before it.

    Parameters
    ----------
    run : `str`
        The RUN the outputs go to.
    inputs : `tuple` [`str`]
        Input collections, in search order.
    output : `str` or `None`
        The CHAINED output collection, if any.
    previous_chain : `tuple` [`str`] or `None`
        ``output``'s children before this run; `None` if it did not exist.
    run_existed : `bool`
        Whether ``run`` existed before.
    """

    run: str
    inputs: tuple[str, ...]
    output: str | None = None
    previous_chain: tuple[str, ...] | None = None
    run_existed: bool = False

    @property
    def chain(self) -> list[str]:
        """The output chain this run sets: the run first, then what was there, then inputs."""
        chain = [self.run]
        for name in (*(self.previous_chain or ()), *self.inputs):
            if name not in chain:
                chain.append(name)
        return chain

    def apply(self, registry: Any) -> None:
        """Register the run and, with an output, prepend it to the chain (giving `chain`).

        The chain's current children are read under a row lock when it is changed, so a
        run started at the same moment into the same output is kept behind this one.
        """
        registry.register_run(self.run)
        if self.output is not None:
            registry.register_collection(self.output, CollectionType.CHAINED)
            registry.update_collection_chain(
                self.output, prepend=[self.run], append=list(self.inputs)
            )

    def undo(self, butler: Any) -> None:
        """Take back what `apply` (and a run that could not start) made."""
        registry = butler.registry
        if self.output is not None:
            if self.previous_chain is None:
                _ignore_missing(registry.remove_collection, self.output)
            else:
                registry.set_collection_chain(self.output, list(self.previous_chain))
        if not self.run_existed:
            names = {name for name, _ in registry.query_collections(types=[CollectionType.RUN])}
            if self.run in names:
                butler.remove_runs([self.run])


def _ignore_missing(func: Any, name: str) -> None:
    try:
        func(name)
    except MissingCollectionError:
        pass


def _existing_chain(registry: Any, output: str) -> tuple[str, ...] | None:
    try:
        ctype = registry.get_collection_type(output)
    except MissingCollectionError:
        return None
    if ctype is not CollectionType.CHAINED:
        raise CollectionTypeError(
            f"-o/--output {output!r} exists as a {ctype.name} collection, not CHAINED; "
            "choose another name"
        )
    return tuple(registry.get_collection_chain(output))


def _exists(registry: Any, name: str) -> bool:
    try:
        registry.get_collection_type(name)
    except MissingCollectionError:
        return False
    return True


def resolve_run_collections(
    registry: Any,
    *,
    inputs: Sequence[str],
    output: str | None,
    output_run: str | None,
    extend_run: bool,
    graph: Any = None,
) -> RunCollections:
    """Decide the run, inputs and output chain of a run (see the module docstring).

    Parameters
    ----------
    registry : `butler.registry.SqlRegistry`
        Read only.
    inputs : sequence of `str`
        ``-i`` collections (empty: take them from the output chain or the graph).
    output : `str`, optional
        ``-o``.
    output_run : `str`, optional
        ``--output-run``.
    extend_run : `bool`
        ``--extend-run``/``--resume``: run into the output chain's first child.
    graph : `pipeline.graph.quantum_graph.QuantumGraph`, optional
        A saved graph (``-g``): its output run and input collections are used.

    Raises
    ------
    RunCollectionsError
        If neither an output nor a run is given, ``--extend-run`` has no run to extend, or
        ``--output-run`` disagrees with the graph's run.
    CollectionTypeError
        If ``output`` exists and is not CHAINED.
    """
    previous = _existing_chain(registry, output) if output is not None else None
    if graph is not None:
        if output_run is not None and output_run != graph.output_run:
            raise RunCollectionsError(
                f"--output-run {output_run!r} is not the saved graph's run "
                f"{graph.output_run!r}; a saved graph always runs into its own run"
            )
        run = graph.output_run
        found_inputs = tuple(graph.input_collections)
    else:
        if extend_run and output_run is None:
            if not previous:
                raise RunCollectionsError(
                    f"--extend-run/--resume: output collection {output!r} has no run to extend"
                    if output is not None
                    else "--extend-run/--resume needs -o OUTPUT (or --output-run RUN)"
                )
            output_run = previous[0]
        if output_run is None:
            if output is None:
                raise RunCollectionsError("an output is needed: -o OUTPUT or --output-run RUN")
            # microseconds and a random tag: runs started at once never share a name
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            output_run = f"{output}/{stamp}-{secrets.token_hex(3)}"
        run = output_run
        found_inputs = tuple(inputs) or tuple(c for c in previous or () if c != run)
    return RunCollections(
        run=run,
        inputs=found_inputs,
        output=output,
        previous_chain=previous,
        run_existed=_exists(registry, run),
    )
