"""Draw the autograd graph of an expression: the ops `backward()` will visit.

Every Tensor made by a differentiable op carries that op (`_ctx`, a Function)
and the op keeps its inputs (`parents`). Following those links from a result
back to the leaves gives the graph that `Tensor.backward` walks in reverse
topological order. Here each op is drawn as one node that stands for the op
and the tensor it made; leaves (parameters, inputs) are boxes.

    to_dot(t, names)  Graphviz DOT text (render with `dot -Tpng`; Graphviz is optional)
    draw(t, names)    the same graph as a matplotlib figure, no Graphviz needed
    graph(t, names)   the nodes and edges as plain lists, which both of them draw

`names` labels leaves: e.g. dict(model.named_parameters(), x=x).
"""
from .tensor import Tensor

# fill colours: a leaf that gets a gradient, a leaf that does not, an op, the root
_COLORS = {"param": "#cfe2f3", "input": "#e6e6e6", "op": "#ffffff", "root": "#d9ead3"}


def _parents(t):
    """The Tensor inputs of the op that made `t` (none for a leaf); a Python number
    or array passed to an op is not a node."""
    ctx = t._ctx
    if ctx is None:
        return []
    return [p for p in getattr(ctx, "parents", []) if isinstance(p, Tensor) and hasattr(p, "data")]


def _nodes(root):
    """Every tensor reachable from `root` through op inputs, each after its inputs
    (an iterative DFS, so a chain of thousands of ops does not hit Python's recursion limit)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
        elif id(t) not in seen:
            seen.add(id(t))
            stack.append((t, True))
            stack.extend((p, False) for p in reversed(_parents(t)))
    return order


def graph(root, names=None):
    """The graph as plain data: (nodes, edges). nodes is a list of dicts with
    `id`, `label`, `kind` ('param', 'input', 'op' or 'root'); edges is a list of
    (input id, op id) pairs, one per use (an input used twice by one op gives two).
    `names`: {name: tensor}, e.g. dict(model.named_parameters()), to label leaves."""
    if not isinstance(root, Tensor):
        raise TypeError(f"graph needs a Tensor, got {type(root).__name__}")
    label_of = {id(t): n for n, t in (names or {}).items()}
    order = _nodes(root)
    ids = {id(t): f"n{i}" for i, t in enumerate(order)}
    nodes, edges = [], []
    for t in order:
        shape = "×".join(map(str, t.shape)) if t.shape else "scalar"
        if t._ctx is None:
            kind = "param" if t.requires_grad else "input"
            label = f"{label_of.get(id(t), 'leaf' if t.requires_grad else 'input')}\n{shape}"
        else:
            kind = "op"
            label = f"{type(t._ctx).__name__}\n{shape}"
            if id(t) in label_of:
                label = f"{label_of[id(t)]} = {label}"
            edges += [(ids[id(p)], ids[id(t)]) for p in _parents(t)]
        if t is root:
            kind = "root"
        nodes.append({"id": ids[id(t)], "label": label, "kind": kind})
    return nodes, edges


def to_dot(root, names=None):
    """Graphviz DOT text of the autograd graph of `root`; arrows point forward,
    from an op's inputs to the op (gradients flow back along them)."""
    nodes, edges = graph(root, names)
    lines = ["digraph autograd {", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10, style=filled];']
    for n in nodes:
        label = n["label"].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        shape = "box" if n["kind"] in ("param", "input") else "ellipse"
        lines.append(f'  {n["id"]} [label="{label}", shape={shape}, '
                     f'fillcolor="{_COLORS[n["kind"]]}"];')
    lines += [f"  {a} -> {b};" for a, b in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def layout(nodes, edges, sweeps=8):
    """(layer, position) per node id, for drawing top to bottom. An op sits one layer
    below its deepest input; a leaf sits just above its first consumer. Within a layer,
    nodes are ordered by, and placed near, the mean position of their neighbours
    (barycentre sweeps), which removes most edge crossings in small graphs."""
    ins = {n["id"]: [] for n in nodes}
    outs = {n["id"]: [] for n in nodes}
    for a, b in edges:
        ins[b].append(a)
        outs[a].append(b)
    layer = {}
    for n in nodes:  # nodes come inputs-first, so every input already has a layer
        layer[n["id"]] = 1 + max((layer[p] for p in ins[n["id"]]), default=-1)
    for n in nodes:
        if not ins[n["id"]] and outs[n["id"]]:
            layer[n["id"]] = min(layer[c] for c in outs[n["id"]]) - 1
    rows = {}
    for n in nodes:
        rows.setdefault(layer[n["id"]], []).append(n["id"])

    pos = {}
    for row in rows.values():  # start: each row centred on 0, one unit apart
        for i, v in enumerate(row):
            pos[v] = i - (len(row) - 1) / 2
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        for lay in sorted(rows, reverse=not down):
            want = {}
            for v in rows[lay]:  # the mean position of the neighbours on the side just placed
                nb = (ins[v] if down else outs[v]) or ins[v] + outs[v]
                want[v] = sum(pos[u] for u in nb) / len(nb) if nb else pos[v]
            rows[lay].sort(key=want.get)
            xs = []
            for v in rows[lay]:  # as wanted, but at least one unit right of the left neighbour
                xs.append(want[v] if not xs else max(want[v], xs[-1] + 1))
            shift = sum(want[v] - x for v, x in zip(rows[lay], xs)) / len(xs)
            for v, x in zip(rows[lay], xs):
                pos[v] = x + shift
    left = min(pos.values())
    return {v: (layer[v], pos[v] - left) for v in layer}


def draw(root, names=None, ax=None, title=None):
    """Draw the autograd graph of `root` with matplotlib; returns the figure.
    Save it with tinydeep.experiments.save_figure(fig, 'graph.png')."""
    import matplotlib.pyplot as plt

    nodes, edges = graph(root, names)
    where = layout(nodes, edges)
    n_layers = 1 + max(lay for lay, _ in where.values())
    n_cols = 1 + max(x for _, x in where.values())
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 + 1.9 * n_cols, 0.4 + 0.85 * n_layers))
    fig = ax.figure
    boxes = {}
    for n in nodes:
        lay, x = where[n["id"]]
        style = "round,pad=0.3" if n["kind"] in ("param", "input") else "round4,pad=0.35"
        boxes[n["id"]] = ax.text(
            x, -lay, n["label"], ha="center", va="center", fontsize=8, family="DejaVu Sans",
            bbox=dict(boxstyle=style, fc=_COLORS[n["kind"]], ec="#555555", lw=0.8), zorder=2)
    # arrows after the boxes (higher zorder): each is clipped to the edges of its two
    # boxes, whose outlines are only known once the boxes are drawn
    for a, b in edges:
        ax.annotate("", xy=(where[b][1], -where[b][0]), xytext=(where[a][1], -where[a][0]),
                    arrowprops=dict(arrowstyle="-|>", color="#444444", lw=0.8, shrinkA=2,
                                    shrinkB=2, patchA=boxes[a].get_bbox_patch(),
                                    patchB=boxes[b].get_bbox_patch()), zorder=3)
    ax.set_xlim(-0.7, n_cols - 0.3)
    ax.set_ylim(-(n_layers - 1) - 0.6, 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return fig
