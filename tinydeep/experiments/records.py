"""Result records of the experiments: JSON, PNG and Markdown tables, each file written
atomically (tinydeep.files: a temporary name, then a rename)."""
import json

from ..files import FILE_MODE, atomic_write, check_writable  # noqa: F401  (re-exported)


def save_json(record, path):
    """A result record (numbers, strings, lists, dicts) as indented JSON."""
    text = json.dumps(record, indent=2, default=float).encode()
    return atomic_write(path, lambda f: f.write(text))


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_figure(fig, path, dpi=120):
    """A matplotlib figure as PNG."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))


def markdown_table(header, rows):
    """A Markdown table: the header row, the rule, one row per item (cells through str)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def save_results(stem, plots, record, json_record=None):
    """A demo's outputs: `stem + suffix + '.png'` for each (suffix, plot) in `plots`, where
    plot(record) returns a figure, then `stem + '.json'` from `json_record` (default: the
    record). Prints where they went; returns the paths."""
    import matplotlib.pyplot as plt
    written = []
    for suffix, plot in plots:
        fig = plot(record)
        written.append(save_figure(fig, stem + suffix + ".png"))
        plt.close(fig)
    written.append(save_json(record if json_record is None else json_record, stem + ".json"))
    print(f"finished in {record['wall_seconds']:.0f} s; wrote\n  " + "\n  ".join(written))
    return written
