"""The docs cannot rot: every ```python snippet in docs/*.md runs, and prints what the
```text block after it says; every code reference points at what it names.

A code reference in the docs is a Markdown link of the form

    [`Name.method`](../tinydeep/file.py#L120-L143)

and must lie over the definition of `Name.method` in that file (a class, function,
method or module-level assignment): the range holds its `def`/`class` line and covers
at least half of it. The engine is edited all the time, so when lines move, rewrite
every range to the exact current one with

    python tests/test_docs.py --fix

A snippet whose ```python fence is preceded by the line `<!-- needs: cuda -->` runs in
a fresh Python process on the 'cuda' device: on a real GPU where numba.cuda finds one,
else in numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1); it is skipped when this
checkout has no CUDA backend or numba.cuda cannot be imported at all.
"""
import ast
import contextlib
import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REF = re.compile(r"\[`(?P<name>[\w.]+)`\]\(\.\./(?P<path>[\w/]+\.py)#L(?P<a>\d+)-L(?P<b>\d+)\)")
FENCE = re.compile(r"^```(\w*)\s*$")
NEEDS_CUDA = "<!-- needs: cuda -->"
MAX_SNIPPET_LINES = 14          # "a snippet of under 15 lines"


# --- reading the Markdown ------------------------------------------------------------------

def doc_files():
    return sorted(DOCS.glob("*.md"))


def blocks(path):
    """Fenced blocks of a Markdown file: dicts with lang, code, line (of the opening fence)
    and the non-blank line before the fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            start = i
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            out.append({"lang": m[1], "code": "\n".join(body) + "\n", "line": start + 1,
                        "prev": prev.strip(), "end": i + 1})
        i += 1
    return out


def snippets():
    """(doc, python block, expected output or None) for every ```python block: the
    expected output is a ```text block that follows with only blank lines between."""
    found = []
    for path in doc_files():
        bs = blocks(path)
        text = path.read_text(encoding="utf-8").splitlines()
        for k, b in enumerate(bs):
            if b["lang"] != "python":
                continue
            expected = None
            if k + 1 < len(bs) and bs[k + 1]["lang"] == "text":
                between = text[b["end"]:bs[k + 1]["line"] - 1]
                if all(not s.strip() for s in between):
                    expected = bs[k + 1]["code"]
            found.append((path, b, expected))
    return found


def refs():
    """Every code reference in docs/*.md: (doc, line number, name, path, a, b)."""
    out = []
    for path in doc_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in REF.finditer(line):
                out.append((path, n, m["name"], m["path"], int(m["a"]), int(m["b"])))
    return out


# --- finding definitions --------------------------------------------------------------------

def definition(path, name):
    """(header line, first line, last line) of `name` ('f', 'Class' or 'Class.method')
    in the Python file `path`, or None. The first line includes decorators."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    body = tree.body
    parts = name.split(".")
    node = None
    for depth, part in enumerate(parts):
        node = None
        for item in body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if item.name == part:
                    node = item
            elif isinstance(item, (ast.Assign, ast.AnnAssign)) and depth == len(parts) - 1:
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    node = item
        if node is None:
            return None
        body = getattr(node, "body", [])
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return node.lineno, first, node.end_lineno


def check_ref(path, name, a, b):
    """None if the range [a, b] lies over the definition, else a sentence saying why not."""
    if not (ROOT / path).exists():
        return f"{path} does not exist"
    d = definition(path, name)
    if d is None:
        return f"{path} has no definition of {name}"
    header, first, last = d
    overlap = max(0, min(b, last) - max(a, first) + 1)
    if not a <= header <= b:
        return f"{name} starts at line {header} of {path}, outside L{a}-L{b} (now L{first}-L{last})"
    if overlap * 2 < last - first + 1:
        return f"L{a}-L{b} covers less than half of {name} (now L{first}-L{last} in {path})"
    if b - a + 1 > 2 * (last - first + 1) + 5:
        return f"L{a}-L{b} is far longer than {name} (L{first}-L{last} in {path})"
    return None


def fix_refs():
    """Rewrite every reference in docs/*.md to the exact lines of its definition."""
    changed = 0
    for path in doc_files():
        text = path.read_text(encoding="utf-8")

        def exact(m):
            nonlocal changed
            d = definition(m["path"], m["name"]) if (ROOT / m["path"]).exists() else None
            if d is None:
                print(f"{path.name}: cannot find {m['name']} in {m['path']}; left as it is")
                return m[0]
            new = f"[`{m['name']}`](../{m['path']}#L{d[1]}-L{d[2]})"
            changed += new != m[0]
            return new

        new_text = REF.sub(exact, text)
        if new_text != text:
            tmp = path.with_suffix(".md.tmp")
            tmp.write_text(new_text, encoding="utf-8")
            os.replace(tmp, path)
    print(f"{changed} reference(s) updated")


# --- the tests --------------------------------------------------------------------------------

if "pytest" in sys.modules:
    import pytest

    SNIPPETS = snippets()
    REFS = refs()

    def _id(s):
        return f"{s[0].name}:{s[1]['line']}"

    def test_the_docs_have_snippets_and_references():
        assert (DOCS / "READING.md").exists()
        assert len(SNIPPETS) >= 8 and len(REFS) >= 20

    @pytest.mark.parametrize("ref", REFS, ids=[f"{r[0].name}:{r[1]}:{r[2]}" for r in REFS])
    def test_reference_points_at_its_definition(ref):
        doc, line, name, path, a, b = ref
        problem = check_ref(path, name, a, b)
        assert problem is None, \
            f"{doc.name} line {line}: {problem}; run python tests/test_docs.py --fix"
        _, first, last = definition(path, name)
        if (a, b) != (first, last):
            warnings.warn(f"{doc.name} line {line}: {name} is now L{first}-L{last} in {path}, "
                          f"the docs say L{a}-L{b}; run python tests/test_docs.py --fix")

    def test_reading_path_structure():
        """8-12 numbered steps; each names code to read and ends with one short snippet
        whose output is shown."""
        text = (DOCS / "READING.md").read_text(encoding="utf-8")
        steps = re.split(r"^## (?=\d+\. )", text, flags=re.M)[1:]
        assert 8 <= len(steps) <= 12, f"{len(steps)} steps"
        for step in steps:
            title = step.splitlines()[0]
            assert REF.search(step), f"step {title!r} names no code to read"
            code = re.findall(r"^```python\n(.*?)^```", step, flags=re.M | re.S)
            assert len(code) == 1, f"step {title!r} has {len(code)} python snippets"
            n = len(code[0].rstrip("\n").splitlines())
            assert n <= MAX_SNIPPET_LINES, f"step {title!r}: snippet of {n} lines"
            assert re.search(r"^```python\n.*?^```\s*\n+```text\n", step, flags=re.M | re.S), \
                f"step {title!r}: the snippet's output (a ```text block) should follow it"

    def test_images_in_the_docs_exist():
        for doc in sorted(DOCS.rglob("*.md")):      # figures/README.md included
            for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
                if "://" not in target:
                    assert (doc.parent / target).exists(), f"{doc.name}: missing image {target}"

    @pytest.mark.parametrize("snippet", SNIPPETS, ids=[_id(s) for s in SNIPPETS])
    def test_snippet_runs_and_prints_what_the_docs_say(snippet, tmp_path, monkeypatch):
        doc, block, expected = snippet
        if block["prev"] == NEEDS_CUDA:
            out = _run_on_cuda(block["code"], tmp_path)
        else:
            from tinydeep import backends
            monkeypatch.chdir(tmp_path)          # a snippet that writes files writes them here
            buf = io.StringIO()
            try:
                with contextlib.redirect_stdout(buf):
                    exec(compile(block["code"], f"{doc.name}:{block['line']}", "exec"),
                         {"__name__": "__main__"})
            finally:
                backends.use_cpu_kernels("cpu")
            out = buf.getvalue()
        if expected is not None:
            assert _lines(out) == _lines(expected), \
                f"{doc.name} line {block['line']} printed:\n{out}\nthe docs say:\n{expected}"

    FAKE_DEMO = """import argparse, os, sys
ap = argparse.ArgumentParser()
ap.add_argument("--out")
ap.add_argument("--quick", action="store_true")
a = ap.parse_args()
if os.environ.get("FAKE_DEMO_FAIL"):
    sys.exit("failing on purpose")
png = open(os.environ["FAKE_PNG"], "rb").read()
for name in ("one.png", "two.png"):
    open(os.path.join(a.out, name), "wb").write(png)
open(os.path.join(a.out, "record.json"), "w").write("{}")
print("quick" if a.quick else "full")
"""

    def test_make_figures_copies_a_demos_pngs_and_keeps_them_on_failure(tmp_path, monkeypatch):
        """docs/make_figures.py on a fake demo: every PNG of a demo not in KEY_FIGURES is
        copied, the index lists them with the command, and a failing run leaves them."""
        sys.path.insert(0, str(DOCS))
        try:
            import make_figures
        finally:
            sys.path.remove(str(DOCS))
        demos, figures = tmp_path / "demos", tmp_path / "figures"
        demos.mkdir()
        (demos / "fake.py").write_text(FAKE_DEMO)
        png = next(DOCS.glob("figures/*.png"), None) or pytest.skip("no figure to copy")
        monkeypatch.setenv("FAKE_PNG", str(png))
        args = ["--demos", str(demos), "--figures", str(figures), "--only", "fake", "--quick"]
        assert make_figures.main(args) == 0
        assert sorted(p.name for p in figures.glob("*.png")) == ["one.png", "two.png"]
        assert (figures / "one.png").read_bytes() == png.read_bytes()
        index = (figures / "README.md").read_text()
        assert "`python demos/fake.py --quick` — *quick*" in index and "![two.png](two.png)" in index
        monkeypatch.setenv("FAKE_DEMO_FAIL", "1")
        monkeypatch.setattr(make_figures.tempfile, "tempdir", str(tmp_path))
        assert make_figures.main(args) == 1
        assert not list(tmp_path.glob("tinydeep-fake-*")), "the failed run's folder is left"
        assert (figures / "two.png").read_bytes() == png.read_bytes()
        assert not [p for p in figures.iterdir() if p.name.startswith(".tmp-")]
        with pytest.raises(SystemExit):
            make_figures.main(["--demos", str(demos), "--figures", str(figures), "--only", "nope"])

    def _lines(text):
        return [line.rstrip() for line in text.strip("\n").splitlines()]

    def _run_on_cuda(code, tmp_path):
        if not (ROOT / "tinydeep" / "backends" / "cuda.py").exists():
            pytest.skip("this checkout has no CUDA backend (tinydeep/backends/cuda.py)")
        env = dict(os.environ)
        if "NUMBA_ENABLE_CUDASIM" not in env:
            probe = subprocess.run([sys.executable, "-c",
                                    "from numba import cuda; print(cuda.is_available())"],
                                   capture_output=True, text=True)
            if probe.stdout.strip() != "True":
                env["NUMBA_ENABLE_CUDASIM"] = "1"
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            if "device 'cuda' is not available" in proc.stderr:
                last = proc.stderr.strip().splitlines()[-1]
                pytest.skip(f"numba.cuda is not usable here: {last}")
            raise AssertionError(f"the cuda snippet failed:\n{proc.stderr}")
        return proc.stdout


if __name__ == "__main__":
    if sys.argv[1:] == ["--fix"]:
        fix_refs()
    else:
        for doc, line, name, path, a, b in refs():
            problem = check_ref(path, name, a, b)
            print(f"{doc.name}:{line} {name} L{a}-L{b}: {problem or 'ok'}")
        print("(python tests/test_docs.py --fix rewrites the ranges to the exact lines)")
