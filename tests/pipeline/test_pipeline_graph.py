import pytest

from pipeline.definition.pipeline_graph import (
    ConnectionMismatchError,
    DuplicateProducerError,
    EdgeSpec,
    MissingInputError,
    PipelineCycleError,
    PipelineGraph,
    PipelineGraphError,
    TaskNode,
)

VISIT_DET = frozenset({"instrument", "visit", "detector"})
VISIT = frozenset({"instrument", "visit"})


def _node(label, dims, inputs=(), outputs=(), init_inputs=(), init_outputs=(), prereqs=()):
    """Literal task node: each connection is (name, storageClass, dims[, multiple])."""
    edges = []
    for kind, specs in [
        ("inputs", inputs),
        ("prerequisiteInputs", prereqs),
        ("initInputs", init_inputs),
        ("outputs", outputs),
        ("initOutputs", init_outputs),
    ]:
        for spec in specs:
            name, sc, d, *multiple = spec
            edges.append(EdgeSpec(name, name, sc, frozenset(d), kind, bool(multiple)))
    return TaskNode(label, frozenset(dims), tuple(edges))


def _abc():
    return [
        _node(
            "c",
            VISIT,
            inputs=[("b_out", "Image", VISIT_DET, True)],
            outputs=[("c_out", "Catalog", VISIT)],
        ),
        _node(
            "a",
            VISIT_DET,
            inputs=[("raw", "Image", VISIT_DET)],
            outputs=[("a_out", "Image", VISIT_DET)],
            init_outputs=[("a_schema", "Schema", ())],
        ),
        _node(
            "b",
            VISIT_DET,
            inputs=[("a_out", "Image", VISIT_DET)],
            outputs=[("b_out", "Image", VISIT_DET)],
            init_inputs=[("a_schema", "Schema", ())],
            prereqs=[("refcat", "Catalog", {"htm7"})],
        ),
    ]


def test_order_producers_consumers():
    g = PipelineGraph(_abc())
    assert g.sorted_labels == ["a", "b", "c"]
    assert g.producer_of("b_out") == "b"
    assert g.consumers_of("b_out") == ("c",)
    assert g.producer_of("raw") is None
    assert set(g.overall_inputs) == {"raw", "refcat"}
    refcat = g.dataset_types["refcat"]
    assert refcat.is_prerequisite and not refcat.is_init
    assert g.dataset_types["a_schema"].is_init
    assert g.dataset_types["a_schema"].consumers == ("b",)
    assert g.dataset_types["c_out"].dimensions == VISIT
    assert g.tasks["c"].dimensions == VISIT
    with pytest.raises(KeyError, match="nope"):
        g.producer_of("nope")


def test_existing_dataset_types_satisfy_inputs():
    existing = {"raw": (VISIT_DET, "Image"), "refcat": (["htm7"], "Catalog")}
    g = PipelineGraph(_abc(), existing_dataset_types=existing)
    assert set(g.overall_inputs) == {"raw", "refcat"}


def test_missing_input():
    with pytest.raises(MissingInputError, match=r"'refcat' is read by task\(s\) 'b'"):
        PipelineGraph(_abc(), existing_dataset_types={"raw": (VISIT_DET, "Image")})


def test_existing_dataset_type_mismatch():
    existing = {"raw": (VISIT, "Image"), "refcat": (["htm7"], "Catalog")}
    with pytest.raises(
        ConnectionMismatchError,
        match=r"'raw': dimensions.*registered in the "
        r"butler.*task 'a'",
    ):
        PipelineGraph(_abc(), existing_dataset_types=existing)


def test_duplicate_producer():
    nodes = _abc() + [_node("a2", VISIT_DET, outputs=[("a_out", "Image", VISIT_DET)])]
    with pytest.raises(
        DuplicateProducerError,
        match=r"'a_out' is written by two tasks: 'a' "
        r"and 'a2'",
    ):
        PipelineGraph(nodes)


def test_cycle_names_the_loop():
    nodes = [
        _node("a", VISIT, inputs=[("y", "I", VISIT)], outputs=[("x", "I", VISIT)]),
        _node("b", VISIT, inputs=[("x", "I", VISIT)], outputs=[("y", "I", VISIT)]),
    ]
    with pytest.raises(PipelineCycleError) as info:
        PipelineGraph(nodes)
    message = str(info.value)
    assert "a -> x -> b -> y -> a" in message
    assert isinstance(info.value, PipelineGraphError) and isinstance(info.value, ValueError)


def test_three_task_cycle_through_init_output():
    nodes = [
        _node("a", VISIT, inputs=[("z", "I", VISIT)], outputs=[("x", "I", VISIT)]),
        _node("b", VISIT, inputs=[("x", "I", VISIT)], init_outputs=[("s", "Schema", ())]),
        _node("c", VISIT, init_inputs=[("s", "Schema", ())], outputs=[("z", "I", VISIT)]),
    ]
    with pytest.raises(PipelineCycleError, match=r"a -> x -> b -> s -> c -> z -> a"):
        PipelineGraph(nodes)


def test_storage_class_mismatch_names_everything():
    nodes = _abc()
    nodes[2] = _node(
        "b",
        VISIT_DET,
        inputs=[("a_out", "Catalog", VISIT_DET)],
        outputs=[("b_out", "Image", VISIT_DET)],
    )
    with pytest.raises(
        ConnectionMismatchError,
        match=r"'a_out': storage class 'Image' \(written by task 'a'\) differs "
        r"from 'Catalog' \(read by task 'b'",
    ):
        PipelineGraph(nodes)


def test_dimension_mismatch():
    nodes = _abc()
    nodes[0] = _node(
        "c", VISIT, inputs=[("b_out", "Image", VISIT)], outputs=[("c_out", "Catalog", VISIT)]
    )
    with pytest.raises(
        ConnectionMismatchError,
        match=r"'b_out': dimensions \{detector, "
        r"instrument, visit\}.*\{instrument, visit\}",
    ):
        PipelineGraph(nodes)


def test_prerequisite_must_not_be_produced():
    nodes = _abc() + [_node("r", VISIT, outputs=[("refcat", "Catalog", {"htm7"})])]
    with pytest.raises(ConnectionMismatchError, match="prerequisite"):
        PipelineGraph(nodes)


def test_drawing():
    g = PipelineGraph(_abc())
    dot = g.to_dot()
    assert dot.startswith("digraph")
    assert '"ds:a_out" -> "task:b";' in dot and '"task:a" -> "ds:a_out";' in dot
    mermaid = g.to_mermaid()
    assert "task_b --> ds_b_out" in mermaid
