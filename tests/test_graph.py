"""tinydeep.graph: the drawn graph is the graph backward() walks, counted by hand."""
import re
import shutil
import subprocess

import numpy as np
import pytest

import tinydeep as td
from tinydeep import functional as F, graph, nn

NODE = re.compile(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)", shape=(\w+), '
                  r'fillcolor="(#[0-9a-f]{6})"\];$')
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+);$")


def parse_dot(text):
    """{id: label}, [(from, to)]; fails on any line that is neither a node, an edge nor
    the fixed header and footer."""
    lines = text.strip().splitlines()
    assert lines[0] == "digraph autograd {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := NODE.match(line):
            nodes[m[1]] = m[2].replace("\\n", "\n")
        elif m := EDGE.match(line):
            edges.append((m[1], m[2]))
        else:
            assert line.strip().startswith(("rankdir", "node [")), line
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


def by_label(nodes, edges):
    """Edges as (from label, to label), labels of the form 'name\\nshape'."""
    return sorted((nodes[a], nodes[b]) for a, b in edges)


def test_product_and_sum_graph_by_hand():
    x = td.tensor([2.0, 3.0], requires_grad=True)
    w = td.tensor([4.0, 5.0], requires_grad=True)
    z = (x * w + x).sum()                      # Mul, Add, Sum; x is used twice
    nodes, edges = parse_dot(graph.to_dot(z, {"x": x, "w": w}))
    assert sorted(nodes.values()) == sorted(["x\n2", "w\n2", "Mul\n2", "Add\n2", "Sum\nscalar"])
    assert by_label(nodes, edges) == sorted([("x\n2", "Mul\n2"), ("w\n2", "Mul\n2"),
                                             ("Mul\n2", "Add\n2"), ("x\n2", "Add\n2"),
                                             ("Add\n2", "Sum\nscalar")])


def test_op_nodes_are_the_ops_backward_visits():
    td.manual_seed(0)
    model = nn.MLP(3, 4, 1, 2)
    x = td.tensor(np.ones((5, 3)))
    loss = F.cross_entropy(model(x), td.tensor(np.array([0, 1, 0, 1, 1])))
    loss = loss + 1e-3 * (model[0].weight ** 2).sum()
    nodes, edges = graph.graph(loss, dict(model.named_parameters(), x=x))
    ops = [n["label"].split("\n")[0] for n in nodes if n["kind"] in ("op", "root")]
    assert sorted(ops) == sorted(["Linear", "ReLU", "Linear", "CrossEntropy", "Pow", "Sum",
                                  "MulScalar", "Add"])
    leaves = {n["label"] for n in nodes if n["kind"] in ("param", "input")}
    assert leaves == {"x\n5×3", "0.weight\n4×3", "0.bias\n4", "2.weight\n2×4", "2.bias\n2"}
    assert [n["kind"] for n in nodes if n["label"].startswith("x\n")] == ["input"]
    # one edge per op input: 3 + 1 + 3 + 1 (targets are an array, not a node) + 1 + 1 + 1 + 2
    assert len(edges) == 13
    # 0.weight feeds two ops: its gradient is the sum over both paths
    w_id = next(n["id"] for n in nodes if n["label"].startswith("0.weight"))
    assert sum(a == w_id for a, _ in edges) == 2
    # and every parameter of the model is a leaf of the graph, so gets a gradient
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_layout_draws_every_edge_downward():
    x = td.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = td.tensor(np.ones(3), requires_grad=True)
    y = ((x + b) * (x - b)).sum() / 3.0
    nodes, edges = graph.graph(y)
    where = graph.layout(nodes, edges)
    assert all(where[a][0] < where[b][0] for a, b in edges)
    # nodes of one layer sit at least one unit apart
    for lay in {lay for lay, _ in where.values()}:
        xs = sorted(x for l2, x in where.values() if l2 == lay)
        assert all(b - a >= 1 - 1e-9 for a, b in zip(xs, xs[1:]))


def test_leaf_and_no_grad_results_are_single_nodes():
    x = td.tensor([1.0, 2.0])
    with td.no_grad():
        y = x * 2.0
    for t, kind in ((x, "root"), (y, "root")):
        nodes, edges = graph.graph(t)
        assert len(nodes) == 1 and edges == [] and nodes[0]["kind"] == kind


def test_long_chain_is_not_recursive():
    x = td.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):           # deeper than Python's recursion limit (1000)
        y = y.reshape(1)            # a cheap op: no kernel call
    nodes, edges = graph.graph(y)
    assert len(nodes) == 3001 and len(edges) == 3000


def test_labels_are_escaped():
    x = td.tensor([1.0], requires_grad=True)
    text = graph.to_dot(x * 2.0, {'a "quoted" \\ name': x})
    nodes, _ = parse_dot(text)
    assert 'a \\"quoted\\" \\\\ name\n1' in nodes.values()


def test_refuses_non_tensor():
    with pytest.raises(TypeError, match="needs a Tensor"):
        graph.to_dot(np.ones(3))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed (optional)")
def test_graphviz_accepts_the_text(tmp_path):
    x = td.tensor([1.0, 2.0], requires_grad=True)
    out = subprocess.run(["dot", "-Tsvg"], input=graph.to_dot((x * x).sum()), text=True,
                         capture_output=True, check=True)
    assert "<svg" in out.stdout


def test_draw_writes_a_png(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from tinydeep.experiments import save_figure

    x = td.tensor([[1.0, 2.0]], requires_grad=True)
    lin = nn.Linear(2, 3)
    fig = graph.draw(F.relu(lin(x)).sum(), dict(lin.named_parameters(), x=x), title="tiny")
    ax = fig.axes[0]
    arrows = [t for t in ax.texts if type(t).__name__ == "Annotation"]
    boxes = [t for t in ax.texts if t not in arrows]
    assert len(boxes) == 6                          # x, weight, bias, Linear, ReLU, Sum
    assert len(arrows) == 5                         # x, weight, bias -> Linear -> ReLU -> Sum
    path = save_figure(fig, tmp_path / "g.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
