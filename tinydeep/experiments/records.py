"""Writing results so a crash or a full disk never leaves a half-written file:
write to a temporary name in the same folder, then rename over the target."""
import json
import os
import tempfile


def _atomic_write(path, write):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def save_json(record, path):
    """A result record (numbers, strings, lists, dicts) as indented JSON."""
    text = json.dumps(record, indent=2, default=float).encode()
    return _atomic_write(path, lambda f: f.write(text))


def save_figure(fig, path, dpi=120):
    """A matplotlib figure as PNG."""
    return _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))
