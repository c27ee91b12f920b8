"""The `tinydeep` command: demo, bench, info, --help everywhere, unknown names, and the
README's first run (a demo with no network, printing where its plot and JSON went)."""
import json
import re
import socket
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numba
import numpy as np
import pytest

from tinydeep import cli
from tinydeep.experiments import records

REPO = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `tinydeep argv...`, run in this process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (print(e.code, file=sys.stderr) or 1)
    out, err = capsys.readouterr()
    return code, out, err


def first_docstring_line(path):
    text = Path(path).read_text(encoding="utf-8")
    return re.search(r'^\s*(?:[rRuU]?)"""\s*(.*?)\s*$', text, re.M).group(1)


@pytest.fixture
def fake_tree(tmp_path, monkeypatch):
    """A source tree with two demos and a benchmark suite, in place of the real one."""
    (tmp_path / "demos").mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "demos" / "alpha.py").write_text(textwrap.dedent('''\
        """Alpha: writes its arguments to the file named by --out.

        More text that is not the description.
        """
        import argparse, json, os, sys
        ap = argparse.ArgumentParser()
        ap.add_argument("--quick", action="store_true")
        ap.add_argument("--device", default="cpu")
        ap.add_argument("--out", default="results")
        ap.add_argument("--n", type=int, default=1)
        a = ap.parse_args()
        os.makedirs(a.out, exist_ok=True)  # as atomic_write does: the CLI creates no folder
        json.dump({"argv": sys.argv[1:], "quick": a.quick, "device": a.device, "n": a.n},
                  open(a.out + "/args.json", "w"))
    '''))
    (tmp_path / "demos" / "beta.py").write_text('"""Beta: pressed Ctrl-C."""\nraise KeyboardInterrupt\n')
    (tmp_path / "demos" / "_helper.py").write_text('"""Not a demo."""\n')
    (tmp_path / "benchmarks" / "bench_one.py").write_text(textwrap.dedent('''\
        """One: records its arguments."""
        import sys
        RAN = sys.argv[1:]
        open(sys.argv[-1], "w").write("one " + " ".join(sys.argv[1:-1]))
    '''))
    (tmp_path / "benchmarks" / "__init__.py").write_text("")
    (tmp_path / "benchmarks" / "__main__.py").write_text(
        'import sys\nassert sys.argv[1:3] == ["--repeats", "3"]\nopen(sys.argv[-1], "w").write("suite")\n')
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    monkeypatch.delitem(sys.modules, "benchmarks", raising=False)
    return tmp_path


# --- help, lists, unknown names ---------------------------------------------------

@pytest.mark.parametrize("argv", [[], ["demo"], ["bench"], ["info"]])
def test_help_everywhere(capsys, argv):
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0
    assert out.startswith("usage: tinydeep")
    if argv == ["demo"]:
        assert "--quick" in out and "--device {cpu,cuda}" in out and "--out DIR" in out


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "required: COMMAND" in err


def test_demo_list_shows_every_demo_with_its_docstring(capsys):
    code, out, _ = run(capsys, "demo", "list")
    assert code == 0
    scripts = sorted(p for p in (REPO / "demos").glob("*.py") if not p.name.startswith("_"))
    assert "quickstart" in [p.stem for p in scripts]
    for p in scripts:
        assert re.search(rf"^  {p.stem}\s+{re.escape(first_docstring_line(p))}$", out, re.M), p


def test_bench_list_shows_every_benchmark(capsys):
    code, out, _ = run(capsys, "bench", "list")
    assert code == 0
    for p in (REPO / "benchmarks").glob("bench_*.py"):
        name = p.stem.removeprefix("bench_")
        assert re.search(rf"^  {name}\s+{re.escape(first_docstring_line(p))}$", out, re.M), p


@pytest.mark.parametrize("kind, plural", [("demo", "demos"), ("bench", "benchmarks")])
def test_unknown_names_list_the_valid_ones(capsys, kind, plural):
    code, _, err = run(capsys, kind, "no_such_thing")
    assert code == 1
    assert "unknown" in err and "'no_such_thing'" in err
    pattern = "*.py" if kind == "demo" else "bench_*.py"
    for p in (REPO / plural).glob(pattern):
        if not p.name.startswith("_"):
            assert p.stem.removeprefix("bench_") in err


def test_fake_tree_discovery_and_helpers_are_skipped(capsys, fake_tree):
    code, out, _ = run(capsys, "demo", "list")
    assert code == 0
    assert "alpha  Alpha: writes its arguments to the file named by --out." in out
    assert "beta   Beta: pressed Ctrl-C." in out
    assert "_helper" not in out and "More text" not in out


def test_missing_demos_folder_says_where_it_looked(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    code, _, err = run(capsys, "demo", "list")
    assert code == 1
    assert f"no demos/ folder at {tmp_path / 'demos'}" in err and "pip install -e ." in err


# --- running demos and benchmarks ------------------------------------------------------

def test_demo_options_and_extra_arguments_pass_through(capsys, fake_tree, tmp_path):
    out_dir = tmp_path / "out"
    code, _, _ = run(capsys, "demo", "--quick", "alpha", "--n", "7", "--device", "cpu",
                     "--out", str(out_dir))
    assert code == 0
    got = json.loads((out_dir / "args.json").read_text())
    assert got == {"argv": ["--quick", "--n", "7", "--device", "cpu", "--out", str(out_dir)],
                   "quick": True, "device": "cpu", "n": 7}
    code, out, _ = run(capsys, "demo", "alpha", "--help")  # the demo's own help
    assert code == 0 and "--n N" in out


def test_demo_on_cuda_runs_there_or_is_refused_before_it_runs(capsys, fake_tree, tmp_path):
    import tinydeep
    code, _, err = run(capsys, "demo", "alpha", "--device", "cuda", "--out", str(tmp_path / "o"))
    if tinydeep.cuda_available():  # a GPU, or NUMBA_ENABLE_CUDASIM=1: the demo gets --device
        assert code == 0
        assert json.loads((tmp_path / "o" / "args.json").read_text())["device"] == "cuda"
    else:
        assert code == 1
        assert "cannot run on 'cuda'" in err and "NUMBA_ENABLE_CUDASIM=1" in err
        assert not (tmp_path / "o" / "args.json").exists()


def test_read_only_output_folder_is_refused_before_the_demo_runs(capsys, fake_tree, tmp_path,
                                                                  monkeypatch):
    def refuse(folder):
        raise PermissionError(13, f"cannot write into the folder {folder}: permission denied")
    monkeypatch.setattr(records, "check_writable", refuse)
    code, _, err = run(capsys, "demo", "alpha", "--out", str(tmp_path / "ro"))
    assert code == 1
    assert f"cannot write into the folder {tmp_path / 'ro'}: permission denied" in err
    assert not (tmp_path / "ro").exists()


def test_ctrl_c_in_a_demo_exits_130_without_a_traceback(capsys, fake_tree, tmp_path):
    code, _, err = run(capsys, "demo", "beta", "--out", str(tmp_path))
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err


def test_bench_runs_one_or_the_whole_suite(capsys, fake_tree, tmp_path):
    target = tmp_path / "ran.txt"
    assert run(capsys, "bench", "one", "--fast", str(target))[0] == 0
    assert target.read_text() == "one --fast"
    assert run(capsys, "bench", "bench_one.py", str(target))[0] == 0
    assert target.read_text() == "one "
    assert run(capsys, "bench", "all", "--repeats", "3", str(target))[0] == 0
    assert target.read_text() == "suite"


def test_readme_first_run_works_offline_and_says_where_the_files_went(capsys, tmp_path,
                                                                       monkeypatch):
    """`tinydeep demo quickstart --quick --out DIR` with every network connection refused."""
    def offline(*args, **kwargs):
        raise OSError("network is off in this test")
    monkeypatch.setattr(socket.socket, "connect", offline)
    monkeypatch.setattr(socket, "create_connection", offline)
    out_dir = tmp_path / "results"
    code, out, _ = run(capsys, "demo", "quickstart", "--quick", "--out", str(out_dir))
    assert code == 0
    png, js = out_dir / "quickstart.png", out_dir / "quickstart.json"
    assert str(png) in out and str(js) in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rec = json.loads(js.read_text())
    assert 0.5 < rec["test_accuracy"] <= 1.0  # ten classes: chance is 0.1
    assert sorted(f.name for f in out_dir.iterdir()) == ["quickstart.json", "quickstart.png"]


# --- info, python -m, the console script ----------------------------------------------

def test_info_reports_versions_threads_caches_and_gpu(capsys):
    import tinydeep
    code, out, _ = run(capsys, "info")
    assert code == 0
    fields = dict(re.findall(r"^(\S+(?: \S+)?)\s{2,}(.*)$", out, re.M))
    assert fields["tinydeep"].startswith(tinydeep.__version__)
    assert fields["python"].startswith(".".join(map(str, sys.version_info[:3])))
    assert fields["numpy"].startswith(np.__version__)
    assert fields["numba"] == numba.__version__
    assert fields["threads"].startswith(f"{numba.get_num_threads()} numba threads")
    assert fields["threading layer"].split()[0] == numba.threading_layer()
    try:
        assert fields["torch"].startswith(metadata.version("torch"))
    except metadata.PackageNotFoundError:
        assert fields["torch"].startswith("not installed")
    assert "numba cache" in fields and "data folder" in fields
    assert fields["gpu"]  # one line, whatever the machine has
    assert run(capsys, "info", "--bogus")[0] == 2


def test_python_dash_m_and_the_console_script():
    r = subprocess.run([sys.executable, "-m", "tinydeep", "demo", "list"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "quickstart" in r.stdout, r.stderr
    scripts = re.search(r"^\[project\.scripts\]\n(.*?)(?:\n\n|\Z)",
                        (REPO / "pyproject.toml").read_text(), re.S | re.M).group(1)
    assert 'tinydeep = "tinydeep.cli:main"' in scripts.splitlines()
    script = Path(sys.executable).parent / "tinydeep"
    assert script.is_file(), f"no {script}: reinstall with `pip install -e .` to get the command"
    r = subprocess.run([str(script), "bench", "list"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "matmul" in r.stdout, r.stderr


def test_a_sigterm_that_c_code_turned_into_its_own_error_still_stops_cleanly(monkeypatch, capsys):
    # matplotlib's C code, interrupted by the handler's Terminated, raises its own error
    # ("Invalid affine transformation matrix"): the CLI still says it stopped, status 143
    import signal
    from tinydeep import signals

    def info(opts, extra):
        with signals.signals_raise():
            try:
                signal.raise_signal(signal.SIGTERM)
            except signals.Terminated:
                raise ValueError("Invalid affine transformation matrix") from None

    monkeypatch.setattr(signals, "raised", [])
    monkeypatch.setattr(cli, "cmd_info", info)
    assert cli.main(["info"]) == 143
    err = capsys.readouterr().err
    assert "stopped by SIGTERM" in err and "affine" not in err
