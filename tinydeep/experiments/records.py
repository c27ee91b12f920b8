"""Result records of the experiments: JSON, PNG and Markdown tables, each file written
atomically (tinydeep.files: a temporary name, then a rename)."""
import json

import numpy as np

from ..files import FILE_MODE, atomic_write, check_writable  # noqa: F401  (re-exported)


def json_value(value):
    """NumPy scalars and arrays as the JSON values they stand for: an int stays an int
    (np.int64(3) -> 3, not 3.0), a bool a bool, an array a (nested) list."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} ({value!r:.60}) in JSON")


def save_json(record, path):
    """A result record (numbers, strings, lists, dicts; NumPy scalars and arrays too) as
    indented JSON. The text is made before the file is touched, so a value JSON cannot
    hold raises TypeError naming it and leaves any old file as it was."""
    text = json.dumps(record, indent=2, default=json_value).encode()
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
    """A demo's outputs: `stem + '.json'` from `json_record` (default: the record) first,
    so the numbers are saved even if a plot fails or the disk fills up while drawing,
    then `stem + suffix + '.png'` for each (suffix, plot) in `plots`, where plot(record)
    returns a figure. Prints where they went; returns the paths."""
    import matplotlib.pyplot as plt
    written = [save_json(record if json_record is None else json_record, stem + ".json")]
    for suffix, plot in plots:
        fig = plot(record)
        try:
            written.append(save_figure(fig, stem + suffix + ".png"))
        finally:
            plt.close(fig)
    print(f"finished in {record['wall_seconds']:.0f} s; wrote\n  " + "\n  ".join(written))
    return written
