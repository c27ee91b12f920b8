"""The second fault sweep (issue 15) as a catalog: one function per case, each run by
`run_case`, which returns a verdict:

    good          the documented answer: a ValueError/TypeError/OSError of the expected
                  type whose message names the argument, file or array, raised before any
                  kernel ran, with every file as it was; or, where the input is valid,
                  the right result
    poor          an error of another type, a message that does not name the culprit,
                  or one raised after kernels ran
    crash         a Numba error escaping, or a killed process (segfault)
    data loss     a file changed or lost that should not have been, a temporary file
                  left behind, results not saved
    silent wrong  no error and a wrong (or meaningless) result
    unsafe        a write that replaced something it must not (a device, a FIFO, a
                  read-only file) or that escaped its folder

tests/test_fault_cases.py runs every case under pytest; tests/fault_sweep.py prints the
counts. Cases marked isolated run in a fresh Python process (a segfault is a verdict, not
the end of the run). The kernel spy is the one of tests/test_faults.py.
"""
import errno
import gzip
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

import tinydeep as td
from tinydeep import functional as F, nn, optim
from tinydeep.data import formats
from tinydeep.experiments import records
from tinydeep.experiments.training import evaluate, fit, history_path
from test_faults import kernel_calls

REPO = Path(__file__).resolve().parent.parent
VERDICTS = ("good", "poor", "crash", "data loss", "silent wrong", "unsafe")
CASES = {}          # name -> (issue item, function, isolated)


class Verdict(Exception):
    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, str(detail)


def case(item, isolated=False):
    def register(fn):
        CASES[fn.__name__] = (item, fn, isolated)
        return fn
    return register


def _is_numba_error(e):
    return type(e).__module__.startswith("numba")


def refused(fn, types, *patterns, kernels_ok=False):
    """`fn()` must raise one of `types` whose message matches every regex in `patterns`,
    before any kernel ran (unless kernels_ok)."""
    with kernel_calls() as calls:
        try:
            fn()
        except types as e:
            missing = [p for p in patterns if not re.search(p, str(e))]
            if missing:
                raise Verdict("poor", f"{type(e).__name__}({str(e)!r}) does not name {missing}")
            if calls and not kernels_ok:
                raise Verdict("poor", f"{type(e).__name__} raised after kernels ran: {calls}")
            return e
        except Exception as e:  # noqa: BLE001  (classified, not hidden)
            raise Verdict("crash" if _is_numba_error(e) else "poor",
                          f"{type(e).__name__}: {str(e)[:300]}") from None
    raise Verdict("silent wrong", "no error was raised")


def snapshot(folder):
    """relative path -> (kind, mode, sha1 of the bytes or the link target)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if os.path.islink(p):
                what = ("link", 0, os.readlink(p))
            elif os.path.isfile(p) and not os.path.islink(p):
                what = ("file", st.st_mode & 0o7777, hashlib.sha1(Path(p).read_bytes()).hexdigest())
            elif os.path.isdir(p):
                what = ("dir", 0, "")
            else:
                what = ("special", st.st_mode, "")
            out[os.path.relpath(p, folder)] = what
    return out


def untouched(before, folder, allow=()):
    """Every entry of `before` is still there, unchanged; nothing new appeared (but the
    paths in `allow`); no temporary file was left."""
    after = snapshot(folder)
    for path, what in before.items():
        if path in allow:
            continue
        if path not in after:
            raise Verdict("data loss", f"{path} vanished")
        if after[path] != what:
            kind = "unsafe" if what[0] in ("special", "link") or after[path][1] != what[1] \
                else "data loss"
            raise Verdict(kind, f"{path} changed: {what} -> {after[path]}")
    new = [p for p in after if p not in before and p not in allow]
    if new:
        temps = [p for p in new if os.path.basename(p).startswith(".tmp")]
        raise Verdict("data loss" if temps else "unsafe", f"left behind: {new}")


def expect(condition, kind, detail):
    if not condition:
        raise Verdict(kind, detail)


def run_case(name, tmp):
    """(verdict, detail) of one case, run in `tmp` (an empty folder)."""
    item, fn, isolated = CASES[name]
    if isolated:
        return run_isolated(name, tmp)
    try:
        fn(Path(tmp))
    except Verdict as v:
        return v.kind, v.detail
    except Exception as e:  # noqa: BLE001  (a case that breaks is a finding, not a pass)
        return ("crash" if _is_numba_error(e) else "poor"), f"{type(e).__name__}: {e}"
    return "good", ""


def run_isolated(name, tmp, timeout=300):
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import fault_cases, json; "
            f"print('VERDICT', json.dumps(fault_cases.run_case_here({name!r}, {str(tmp)!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=timeout, env=_env())
    if r.returncode < 0:
        return "crash", f"killed by signal {-r.returncode}"
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("VERDICT ")]
    if not line:
        return "crash", f"exit {r.returncode}: {r.stderr[-600:]}"
    return tuple(json.loads(line[-1][len("VERDICT "):]))


def run_case_here(name, tmp):
    item, fn, _ = CASES[name]
    try:
        fn(Path(tmp))
    except Verdict as v:
        return v.kind, v.detail
    except Exception as e:  # noqa: BLE001
        return ("crash" if _is_numba_error(e) else "poor"), f"{type(e).__name__}: {e}"
    return "good", ""


def _default_signals():
    """For a child process: SIGTERM and SIGHUP as a fresh login shell leaves them. A signal
    ignored when a process starts stays ignored (nohup's promise, which tinydeep keeps), and
    the harness running these tests may ignore them."""
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, signal.SIG_DFL if s != signal.SIGINT else signal.default_int_handler)


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("NUMBA_NUM_THREADS", "2")
    env.update(extra)
    return env


def _mlp(seed=0, *sizes):
    td.manual_seed(seed)
    return nn.MLP(*(sizes or (3, 4, 1, 2)))


def _data(n=40, d=3, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, rng.integers(0, classes, n)


# === 1. a .grad of the wrong shape or dtype reaching the SGD kernel (tensor.py / optim.py) ===

def _sgd_with_grad(grad, shape=(4, 3)):
    p = nn.Parameter(np.zeros(shape, np.float32))
    p.grad = grad
    optim.SGD([p], lr=0.1).step()


@case(1, isolated=True)
def sgd_grad_of_the_wrong_shape_small(tmp):
    refused(lambda: _sgd_with_grad(np.ones((2, 3), np.float32)), (ValueError, TypeError),
            r"\(2, 3\)", r"\(4, 3\)")


@case(1, isolated=True)
def sgd_grad_of_the_wrong_shape_large(tmp):
    refused(lambda: _sgd_with_grad(np.ones(10, np.float32), (3000, 3000)), (ValueError, TypeError),
            r"\(10,\)", r"\(3000, 3000\)")


@case(1, isolated=True)
def sgd_grad_of_the_wrong_dtype(tmp):
    refused(lambda: _sgd_with_grad(np.ones((4, 3), np.float64)), (ValueError, TypeError), "float64")


@case(1, isolated=True)
def backward_accumulates_into_a_grad_of_the_wrong_shape(tmp):
    w = td.tensor(np.ones((2, 3)), requires_grad=True)
    w.grad = np.zeros((5,), np.float32)
    refused(lambda: (w * 2.0).sum().backward(), (ValueError, TypeError), r"\(5,\)", r"\(2, 3\)",
            kernels_ok=True)


# === 2. read-only parameters ==================================================

def _readonly_step(make):
    p = make()
    before = np.array(p.numpy(), copy=True)
    p.grad = np.ones(p.shape, np.float32)
    with kernel_calls():
        try:
            optim.SGD([p], lr=0.5).step()
        except (ValueError, TypeError) as e:
            expect(re.search("read-only|readonly|not writeable|writable", str(e)), "poor", str(e))
            return
        except Exception as e:  # noqa: BLE001
            raise Verdict("crash" if _is_numba_error(e) else "poor", f"{type(e).__name__}: {e}")
    expect(np.allclose(p.numpy(), before - 0.5), "silent wrong", f"{p.numpy()} after one step")


@case(2, isolated=True)
def read_only_memmap_parameter(tmp):
    np.save(tmp / "w.npy", np.ones((2, 3), np.float32))
    _readonly_step(lambda: nn.Parameter(np.load(tmp / "w.npy", mmap_mode="r")))


@case(2, isolated=True)
def read_only_leaf(tmp):
    a = np.ones(3, np.float32)
    a.flags.writeable = False
    _readonly_step(lambda: td.tensor(a, requires_grad=True))


# === 3. the atomic writer's targets ===========================================

def _save_refused(tmp, target, types, *patterns):
    before = snapshot(tmp)
    refused(lambda: nn.save(_mlp(), target), types, *patterns)
    untouched(before, tmp)


@case(3)
def save_onto_a_fifo(tmp):
    os.mkfifo(tmp / "pipe")
    _save_refused(tmp, tmp / "pipe", OSError, "pipe", "FIFO")


@case(3)
def save_onto_a_device_node(tmp):
    try:
        os.mknod(tmp / "null", 0o666 | 0o020000, os.makedev(1, 3))  # a character device
    except (PermissionError, OSError):
        if not os.path.exists("/dev/null"):
            return
        # without CAP_MKNOD: the real /dev/null, which the policy refuses before any write
        before = os.stat("/dev/null")
        refused(lambda: nn.save(_mlp(), "/dev/null"), OSError, "/dev/null", "character device")
        after = os.stat("/dev/null")
        expect((before.st_ino, before.st_mode) == (after.st_ino, after.st_mode), "unsafe",
               "/dev/null was replaced")
        return
    _save_refused(tmp, tmp / "null", OSError, "null", "character device")


@case(3)
def save_onto_a_folder(tmp):
    (tmp / "ckpt.npz").mkdir()
    _save_refused(tmp, tmp / "ckpt.npz", IsADirectoryError, "ckpt.npz", "folder")


@case(3)
def save_onto_a_read_only_file(tmp):
    (tmp / "m.npz").write_bytes(b"keep me")
    os.chmod(tmp / "m.npz", 0o444)
    _save_refused(tmp, tmp / "m.npz", PermissionError, "m.npz", "read-only")


@case(3)
def save_keeps_a_private_files_mode(tmp):
    path = tmp / "m.npz"
    nn.save(_mlp(), path)
    os.chmod(path, 0o600)
    nn.save(_mlp(1), path)
    expect(os.stat(path).st_mode & 0o777 == 0o600, "unsafe",
           f"mode {os.stat(path).st_mode & 0o777:#o}, was 0o600")
    expect(sorted(os.listdir(tmp)) == ["m.npz"], "data loss", os.listdir(tmp))


@case(3)
def save_through_a_symlink_follows_it(tmp):
    (tmp / "real").mkdir()
    nn.save(_mlp(), tmp / "real" / "m.npz")
    os.symlink("real/m.npz", tmp / "link.npz")
    model = _mlp(1)
    nn.save(model, tmp / "link.npz")
    expect(os.path.islink(tmp / "link.npz"), "unsafe", "the symlink was replaced by a file")
    got = nn.load(_mlp(), tmp / "real" / "m.npz")
    expect(all(np.array_equal(p.data, q.data) for p, q in zip(got.parameters(), model.parameters())),
           "silent wrong", "the link's target kept its old content")
    expect(sorted(os.listdir(tmp / "real")) == ["m.npz"], "data loss", os.listdir(tmp / "real"))


@case(3)
def save_through_a_dangling_symlink(tmp):
    os.symlink("nowhere/m.npz", tmp / "link.npz")
    _save_refused(tmp, tmp / "link.npz", FileNotFoundError, "link.npz", "does not exist")


# === 4. loading checkpoints ====================================================

def _load_refused(tmp, path, *patterns, state=None):
    model = _mlp(7)
    before_params = [p.data.copy() for p in model.parameters()]
    before = snapshot(tmp)
    if state is None:
        refused(lambda: nn.load(model, path), (ValueError, OSError), *patterns)
    else:
        refused(lambda: model.load_state_dict(state), (ValueError, TypeError), *patterns)
    expect(all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before_params)),
           "data loss", "the model was changed by a refused load")
    untouched(before, tmp)


def _state_with(name, value):
    state = _mlp().state_dict()
    state[name] = value
    return state


def _bad_dtype(tmp, array, word):
    np.savez(tmp / "bad.npz", **_state_with("2.weight", array))
    _load_refused(tmp, tmp / "bad.npz", "bad.npz", "2.weight", word)


@case(4)
def load_strings_half_loads_nothing(tmp):
    state = _state_with("2.weight", np.full((2, 4), "x"))  # the last array of four
    np.savez(tmp / "bad.npz", **state)
    _load_refused(tmp, tmp / "bad.npz", "bad.npz", "2.weight", "strings")


@case(4)
def load_complex_array(tmp):
    _bad_dtype(tmp, np.ones((2, 4), complex), "complex")


@case(4)
def load_datetime_array(tmp):
    _bad_dtype(tmp, np.zeros((2, 4), "datetime64[s]"), "datetime")


@case(4)
def load_structured_array(tmp):
    _bad_dtype(tmp, np.zeros((2, 4), [("a", "f4"), ("b", "i4")]), "structured")


@case(4)
def load_state_dict_with_objects(tmp):
    _load_refused(tmp, None, "2.weight", "object",
                  state=_state_with("2.weight", np.array([[object()] * 4] * 2)))


@case(4)
def load_state_dict_not_a_mapping(tmp):
    _load_refused(tmp, None, "mapping", "list", state=list(_mlp().state_dict().values()))


@case(4)
def load_a_file_of_zeros(tmp):
    (tmp / "z.npz").write_bytes(bytes(1000))
    _load_refused(tmp, tmp / "z.npz", "z.npz", "not a tinydeep checkpoint")


@case(4)
def load_a_text_file(tmp):
    (tmp / "t.npz").write_text("weights: 1 2 3\n")
    _load_refused(tmp, tmp / "t.npz", "t.npz", "not a tinydeep checkpoint")


@case(4)
def load_an_empty_file(tmp):
    (tmp / "e.npz").write_bytes(b"")
    _load_refused(tmp, tmp / "e.npz", "e.npz", "empty file")


@case(4)
def load_a_npy_file(tmp):
    np.save(tmp / "w.npy", np.ones(3))
    _load_refused(tmp, tmp / "w.npy", "w.npy", r"single \.npy array")


@case(4)
def load_a_huge_npy_header(tmp):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": (10 ** 6, 10 ** 6, 10 ** 3)})
    with __import__("zipfile").ZipFile(tmp / "h.npz", "w") as z:
        z.writestr("0.weight.npy", buf.getvalue())
    _load_refused(tmp, tmp / "h.npz", "h.npz", "0.weight", "declares shape")


@case(4)
def load_a_pickled_object_array(tmp):
    np.savez(tmp / "o.npz", **_state_with("0.weight", np.array([[None] * 3] * 4, dtype=object)))
    _load_refused(tmp, tmp / "o.npz", "o.npz", "0.weight", "objects")


@case(4)
def load_a_folder(tmp):
    (tmp / "d.npz").mkdir()
    _load_refused(tmp, tmp / "d.npz", "d.npz", "folder")


# === 5. fit's data checks, up front ============================================

def _fit_refused(tmp, patterns, x=None, y=None, types=(ValueError, TypeError), **kwargs):
    """fit must refuse before the first step and before writing its checkpoint."""
    x0, y0 = _data()
    x, y = (x0 if x is None else x), (y0 if y is None else y)
    before = snapshot(tmp)
    kwargs.setdefault("epochs", 2)
    kwargs.setdefault("lr", 0.1)
    model = _mlp()
    params = [p.data.copy() for p in model.parameters()]
    with kernel_calls() as calls:
        refused(lambda: fit(model, x, y, checkpoint=tmp / "run.npz", batch_size=8, **kwargs),
                types, *patterns, kernels_ok=True)
    expect("sgd_update" not in calls and "sgd" not in calls, "poor",
           f"refused after training steps: {calls}")
    expect(all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), params)),
           "silent wrong", "parameters changed")
    untouched(before, tmp)


@case(5)
def fit_test_label_out_of_range(tmp):
    xt, yt = _data(10, seed=1)
    yt[6] = 2
    _fit_refused(tmp, ["test set", "label 2", r"\[0, 2\)", "row 6"], test=(xt, yt))


@case(5)
def fit_train_label_out_of_range(tmp):
    x, y = _data()
    y[3] = 5
    _fit_refused(tmp, ["label 5", "2 outputs", "row 3"], y=y)


@case(5)
def fit_negative_label(tmp):
    x, y = _data()
    y[9] = -1
    _fit_refused(tmp, ["-1", "row 9"], y=y)


@case(5)
def fit_float_labels(tmp):
    _fit_refused(tmp, ["y", "integer class indices", "float64"], y=_data()[1].astype(float))


@case(5)
def fit_one_hot_labels(tmp):
    _fit_refused(tmp, ["y", r"shape \(40, 2\)"], y=np.eye(2, dtype=np.int64)[_data()[1]])


@case(5)
def fit_uint8_images(tmp):
    _fit_refused(tmp, ["x", "uint8", "astype"], x=(np.abs(_data()[0]) * 50).astype(np.uint8))


@case(5)
def fit_nan_in_the_test_set(tmp):
    xt, yt = _data(10, seed=1)
    xt[4, 1] = np.nan
    _fit_refused(tmp, ["test set", "NaN", "row 4"], test=(xt, yt))


@case(5)
def fit_test_set_of_the_wrong_width(tmp):
    xt, yt = _data(10, d=5, seed=1)
    _fit_refused(tmp, [r"\(1, 5\)", r"\(4, 3\)"], test=(xt, yt))


@case(5)
def fit_test_set_not_a_pair(tmp):
    _fit_refused(tmp, ["test", "pair"], test=_data(10)[0])


@case(5)
def fit_test_set_lengths_differ(tmp):
    xt, yt = _data(10, seed=1)
    _fit_refused(tmp, ["test set", "10 rows", "9"], test=(xt, yt[:9]))


@case(5, isolated=True)
def fit_bad_test_label_on_cuda(tmp):
    """On 'cuda' (a GPU, or numba's simulator) the labels are checked up front too."""
    code = textwrap.dedent(f"""
        import numpy as np, tinydeep as td
        from tinydeep import nn
        from tinydeep.experiments.training import fit
        td.manual_seed(0)
        try:
            model = nn.MLP(3, 4, 1, 2).to("cuda")
        except ValueError as e:
            print("NO CUDA", e); raise SystemExit
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((40, 3)).astype(np.float32), rng.integers(0, 2, 40)
        yt = y[:10].copy(); yt[6] = 2
        try:
            fit(model, x, y, 2, 0.1, test=(x[:10], yt), checkpoint={str(tmp / 'run.npz')!r})
        except ValueError as e:
            print("REFUSED", e)
    """)
    env = _env(NUMBA_ENABLE_CUDASIM=os.environ.get("NUMBA_ENABLE_CUDASIM", "1"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=600)
    expect(r.returncode == 0, "crash" if r.returncode < 0 else "poor", r.stderr[-800:])
    if r.stdout.startswith("NO CUDA"):
        return
    expect("REFUSED" in r.stdout, "silent wrong", r.stdout[-400:])
    expect(re.search(r"test set.*label 2.*\[0, 2\)", r.stdout), "poor", r.stdout)
    expect(os.listdir(tmp) == [], "data loss", os.listdir(tmp))


# === 6. silent wrong answers ====================================================

@case(6)
def fit_lr_decay_negative(tmp):
    _fit_refused(tmp, ["lr_decay", r"\(0, 1\]", "-1"], lr_decay=-1)


@case(6)
def fit_lr_decay_zero(tmp):
    _fit_refused(tmp, ["lr_decay", r"\(0, 1\]"], lr_decay=0.0)


@case(6)
def fit_lr_decay_above_one(tmp):
    _fit_refused(tmp, ["lr_decay", "1.5"], lr_decay=1.5)


@case(6)
def fit_lr_nan(tmp):
    _fit_refused(tmp, ["lr", "nan"], lr=float("nan"))


def _demo_refused(tmp, demo, *args):
    """A demo given a bad argument exits with argparse's status 2, naming the option,
    before it creates or trains anything."""
    out = tmp / "out"
    r = subprocess.run([sys.executable, str(REPO / "demos" / f"{demo}.py"), "--quick",
                        "--out", str(out), *args], capture_output=True, text=True, timeout=300,
                       env=_env(MPLBACKEND="Agg"), cwd=tmp)
    expect(r.returncode != 0, "silent wrong", f"exit 0 for {args}: {r.stdout[-300:]}")
    expect(r.returncode == 2 and args[0] in r.stderr and "Traceback" not in r.stderr, "poor",
           f"exit {r.returncode}: {r.stderr[-400:]}")
    expect(not out.exists() and os.listdir(tmp) == [], "unsafe", os.listdir(tmp))


@case(6)
def demo_epochs_negative(tmp):
    _demo_refused(tmp, "spatial_transformer", "--epochs", "-1")


@case(6)
def demo_epochs_zero(tmp):
    _demo_refused(tmp, "spatial_transformer", "--epochs", "0")


@case(6)
def demo_n_train_zero(tmp):
    _demo_refused(tmp, "primes", "--n-train", "0")


@case(6)
def demo_seeds_fraction(tmp):
    _demo_refused(tmp, "fat_vs_deep", "--seeds", "1.5")


@case(6)
def tensor_plus_none(tmp):
    refused(lambda: td.tensor(np.ones(2)) + None, TypeError, "None")


@case(6)
def tensor_times_complex(tmp):
    refused(lambda: td.tensor(np.ones(2)) * 1j, TypeError, "complex")


@case(6)
def json_keeps_numpy_ints(tmp):
    records.save_json({"n": np.int64(3), "k": [np.int32(1)], "ok": np.bool_(True),
                       "x": np.float32(0.5)}, tmp / "r.json")
    text = (tmp / "r.json").read_text()
    got = json.loads(text)
    expect(got == {"n": 3, "k": [1], "ok": True, "x": 0.5} and '"n": 3,' in text
           and type(got["n"]) is int, "silent wrong", text)


@case(6)
def json_refuses_what_it_cannot_store(tmp):
    records.save_json({"run": 1}, tmp / "r.json")
    before = snapshot(tmp)
    refused(lambda: records.save_json({"f": object()}, tmp / "r.json"), TypeError, "object")
    untouched(before, tmp)


# === 7. CIFAR archives ============================================================

def _cifar_refused(tmp, extra_members, *patterns):
    home = tmp / "home"
    home.mkdir()
    batch = bytes(3073) * 2
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in formats.CIFAR_TRAIN + formats.CIFAR_TEST:
            info = tarfile.TarInfo(f"{formats.CIFAR_DIR}/{name}")
            info.size = len(batch)
            tar.addfile(info, io.BytesIO(batch))
        for info, data in extra_members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    (home / "cifar-10-binary.tar.gz").write_bytes(buf.getvalue())
    (tmp / "victim.bin").write_bytes(b"\x07" + bytes(3072))
    saved = (os.environ.get("TINYDEEP_DATA"), dict(formats.RESOURCES["cifar10"]))
    os.environ["TINYDEEP_DATA"] = str(home)
    formats.RESOURCES["cifar10"].update(
        records_per_batch=2, files={"cifar-10-binary.tar.gz": hashlib.md5(buf.getvalue()).hexdigest()})
    try:
        before = snapshot(tmp)
        refused(lambda: formats.load_cifar10(train=True, download=False), ValueError, *patterns)
        untouched(before, tmp, allow={"home/" + formats.CIFAR_DIR})
        extracted = os.listdir(home / formats.CIFAR_DIR) if (home / formats.CIFAR_DIR).exists() else []
        expect(extracted == [], "unsafe", f"extracted {extracted}")
    finally:
        formats.RESOURCES["cifar10"].clear()
        formats.RESOURCES["cifar10"].update(saved[1])
        if saved[0] is None:
            os.environ.pop("TINYDEEP_DATA", None)
        else:
            os.environ["TINYDEEP_DATA"] = saved[0]


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@case(7)
def cifar_relative_symlink_member(tmp):
    # replaces data_batch_1.bin, pointing at ../victim.bin: inside the extraction folder
    # while extracting, outside it once moved into place
    _cifar_refused(tmp, [_link(f"{formats.CIFAR_DIR}/data_batch_1.bin", "../../victim.bin")],
                   "data_batch_1.bin", "link")


@case(7)
def cifar_symlink_inside_the_tree(tmp):
    _cifar_refused(tmp, [_link(f"{formats.CIFAR_DIR}/extra.bin", "data_batch_2.bin")],
                   "extra.bin", "link")


@case(7)
def cifar_hard_link_member(tmp):
    _cifar_refused(tmp, [_link(f"{formats.CIFAR_DIR}/data_batch_1.bin",
                               f"{formats.CIFAR_DIR}/test_batch.bin", tarfile.LNKTYPE)],
                   "data_batch_1.bin", "link")


@case(7)
def cifar_oversized_member(tmp):
    info = tarfile.TarInfo(f"{formats.CIFAR_DIR}/data_batch_3.bin")
    big = bytes(3073 * 50)
    info.size = len(big)
    _cifar_refused(tmp, [(info, big)], "data_batch_3.bin", "more than a CIFAR-10 batch")


# === 8. work lost or wasted ====================================================

FIT_SCRIPT = """
import sys, numpy as np, tinydeep as td
from tinydeep import nn
from tinydeep.experiments.training import fit
td.manual_seed(0)
rng = np.random.default_rng(0)
x = rng.standard_normal((2000, 20)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
model = nn.MLP(20, 64, 2, 2).to(sys.argv[2] if len(sys.argv) > 2 else "cpu")
fit(model, x, y, epochs=100000, lr=0.01, batch_size=50, checkpoint=sys.argv[1])
"""


def _signal_fit(tmp, signum, device="cpu"):
    ckpt = tmp / "run.npz"
    p = subprocess.Popen([sys.executable, "-c", FIT_SCRIPT, str(ckpt), device], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp,
                         preexec_fn=_default_signals)
    deadline = time.time() + 240
    while not os.path.exists(history_path(ckpt)) and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)          # the history appears after the first whole epoch
    time.sleep(0.5)              # into the second epoch (or, on a loaded machine, still at its start)
    p.send_signal(signum)
    out, err = p.communicate(timeout=120)
    expect(p.returncode == 128 + signum, "poor" if p.returncode > 0 else "data loss",
           f"exit {p.returncode}, wanted {128 + signum}: {err[-600:]}")
    expect("Traceback" not in err, "poor", err[-600:])
    saved = records.load_json(history_path(ckpt))
    name = signal.Signals(signum).name
    expect(saved.get("signal") == name and saved.get("interrupted_after_step", 0) >= 40,
           "data loss", {k: saved.get(k) for k in ("signal", "interrupted_after_step")})
    # the update is never cut in half (signals wait for it), so the checkpoint is always
    # the parameters after the last whole step, and the history reaches that step
    expect(saved.get("checkpoint_after_step") == saved["interrupted_after_step"],
           "data loss", saved.get("checkpoint_after_step"))
    expect(saved["steps"][-1] == saved["interrupted_after_step"], "data loss",
           "the history does not reach the last step")
    td.manual_seed(0)
    nn.load(nn.MLP(20, 64, 2, 2), ckpt)   # whole and readable
    expect(sorted(os.listdir(tmp)) == ["run.history.json", "run.npz"], "data loss", os.listdir(tmp))


@case(8)
def sigterm_during_fit(tmp):
    _signal_fit(tmp, signal.SIGTERM)


@case(8)
def sighup_during_fit(tmp):
    _signal_fit(tmp, signal.SIGHUP)


@case(8)
def sigterm_during_a_demo(tmp):
    """`tinydeep demo quickstart` killed with SIGTERM while it trains: status 143, one line,
    no traceback, no temporary file; and the demo's --out folder has no partial file."""
    out = tmp / "out"
    # the default run (not --quick): its training lasts long enough that the signal lands in
    # it, where a --quick run can finish within the half second below and exit by SIG_DFL
    p = subprocess.Popen([sys.executable, "-m", "tinydeep", "demo", "quickstart", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(MPLBACKEND="Agg"),
                         cwd=tmp, preexec_fn=_default_signals)
    seen = []

    def watch():  # read stderr as it comes, to see the progress bar start
        while True:
            chunk = p.stderr.read1(4096) if hasattr(p.stderr, "read1") else p.stderr.read(1)
            if not chunk:
                return
            seen.append(chunk)
    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    deadline = time.time() + 240
    while b"%|" not in b"".join(seen) and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)          # until the progress bar shows: training has begun
    time.sleep(0.5)
    expect(p.poll() is None, "poor", "the demo ended before the signal could be sent")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    reader.join(timeout=10)
    text = b"".join(seen).decode(errors="replace")
    expect(p.returncode == 143, "poor" if p.returncode > 0 else "data loss",
           f"exit {p.returncode}: {text[-600:]}")
    expect("Traceback" not in text and "stopped by SIGTERM" in text, "poor", text[-600:])
    left = [f for f in (os.listdir(out) if out.exists() else []) if f.startswith(".tmp")]
    expect(left == [], "data loss", left)


def _full_disk(tmp, patch):
    """check_writable finds a full disk before any training."""
    real = {"statvfs": os.statvfs, "write": os.write}
    setattr(os, patch[0], patch[1])
    try:
        refused(lambda: records.check_writable(tmp / "results"), OSError, "results",
                "no space left")
    finally:
        os.statvfs, os.write = real["statvfs"], real["write"]
    expect(os.listdir(tmp) == [], "data loss", os.listdir(tmp))


@case(8)
def full_disk_found_by_the_free_space_check(tmp):
    class Full:
        f_bavail, f_frsize = 0, 4096
    _full_disk(tmp, ("statvfs", lambda path: Full()))


@case(8)
def full_disk_found_by_the_probe_write(tmp):
    real_write = os.write

    def write(fd, data):
        if b"tinydeep probe" in bytes(data[:14]):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)
    _full_disk(tmp, ("write", write))


@case(8)
def full_disk_stops_the_cli_before_the_demo(tmp):
    from tinydeep import cli

    class Full:
        f_bavail, f_frsize = 0, 4096
    real = os.statvfs
    os.statvfs = lambda path: Full()
    t0 = time.time()
    try:
        try:
            cli.main(["demo", "quickstart", "--out", str(tmp / "out")])
            raise Verdict("silent wrong", "the demo ran on a full disk")
        except SystemExit as e:
            expect("no space left" in str(e.code) and "out" in str(e.code), "poor", e.code)
    finally:
        os.statvfs = real
    expect(time.time() - t0 < 30 and os.listdir(tmp) == [], "data loss", os.listdir(tmp))


@case(8)
def json_is_written_before_the_png(tmp):
    def plot(record):
        raise OSError(errno.ENOSPC, "no space left on the device (while drawing)")
    stem = str(tmp / "demo")
    try:
        records.save_results(stem, (("", plot),), {"wall_seconds": 1.0, "accuracy": 0.9})
    except OSError:
        pass
    expect(os.path.exists(stem + ".json"), "data loss", "the numbers were not saved")
    expect(records.load_json(stem + ".json")["accuracy"] == 0.9, "data loss", "wrong JSON")
    expect(sorted(os.listdir(tmp)) == ["demo.json"], "data loss", os.listdir(tmp))


def _idx(a):
    a = np.asarray(a, np.uint8)
    return bytes([0, 0, 8, a.ndim]) + b"".join(s.to_bytes(4, "big") for s in a.shape) + a.tobytes()


def _mnist_home(tmp, images, labels, gz=True):
    folder = tmp / "home" / "mnist"
    folder.mkdir(parents=True)
    for stem, blob in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        if blob is not None:
            (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(blob, 1) if gz else blob)
    return folder


def _with_data(tmp, fn):
    saved = os.environ.get("TINYDEEP_DATA")
    os.environ["TINYDEEP_DATA"] = str(tmp / "home")
    try:
        return fn()
    finally:
        if saved is None:
            os.environ.pop("TINYDEEP_DATA", None)
        else:
            os.environ["TINYDEEP_DATA"] = saved


@case(8)
def gzip_bomb_behind_a_small_header(tmp):
    """3 images stated, 200 MB of zeros behind them: refused after reading 3·784 + 1 bytes."""
    images = _idx(np.zeros((3, 28, 28))) + bytes(200 * 2 ** 20)
    _mnist_home(tmp, images, _idx([1, 2, 3]))
    t0 = time.time()
    _with_data(tmp, lambda: refused(lambda: formats.load_mnist(train=False, download=False),
                                    ValueError, "t10k-images", "trailing bytes"))
    expect(time.time() - t0 < 5, "poor", f"{time.time() - t0:.1f} s: the bomb was inflated")


@case(8)
def gzip_bomb_with_a_huge_stated_size(tmp):
    header = bytes([0, 0, 8, 3]) + b"".join(s.to_bytes(4, "big") for s in (60000, 2 ** 20, 2 ** 10))
    _mnist_home(tmp, header + bytes(2 ** 20), _idx([1, 2, 3]))
    _with_data(tmp, lambda: refused(lambda: formats.load_mnist(train=False, download=False),
                                    ValueError, "t10k-images", "more than any data file"))


@case(8)
def corrupt_mnist_in_the_cli_is_one_line(tmp):
    _mnist_home(tmp, _idx(np.zeros((3, 28, 28)))[:-7], _idx([1, 2, 3]))
    folder = tmp / "home" / "mnist"
    for train in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / train).write_bytes((folder / train.replace("train", "t10k")).read_bytes())
    r = subprocess.run([sys.executable, "-m", "tinydeep", "demo", "random_labels", "--quick",
                        "--dataset", "mnist", "--out", str(tmp / "out")], capture_output=True,
                       text=True, env=_env(TINYDEEP_DATA=str(tmp / "home"), MPLBACKEND="Agg"),
                       timeout=300, cwd=tmp)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    expect(r.returncode == 1 and "Traceback" not in r.stderr, "poor",
           f"exit {r.returncode}: {r.stderr[-800:]}")
    expect(lines and "images-idx3-ubyte.gz: truncated" in lines[-1], "poor", lines[-3:])


@case(8)
def unpacked_images_beside_gz_labels_stay_offline(tmp):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    folder = _mnist_home(tmp, _idx(images), None, gz=False)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx([4, 5, 6])))
    saved = formats.RESOURCES["mnist"]["mirrors"]
    with socket.socket() as s:                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    formats.RESOURCES["mnist"]["mirrors"] = [f"http://127.0.0.1:{port}/"]
    try:
        x, y = _with_data(tmp, lambda: formats.load_mnist(train=False, download=True))
    except Exception as e:  # noqa: BLE001
        raise Verdict("poor", f"{type(e).__name__}: {e}") from None
    finally:
        formats.RESOURCES["mnist"]["mirrors"] = saved
    expect(y.tolist() == [4, 5, 6] and np.allclose(x[:, 0] * 255, images), "silent wrong",
           "wrong data")


@case(8)
def cli_unknown_flag_creates_nothing(tmp):
    r = subprocess.run([sys.executable, "-m", "tinydeep", "demo", "quickstart", "--bogus"],
                       capture_output=True, text=True, env=_env(MPLBACKEND="Agg"), timeout=300,
                       cwd=tmp)
    expect(r.returncode == 2 and "--bogus" in r.stderr, "poor", f"exit {r.returncode}: {r.stderr}")
    expect(os.listdir(tmp) == [], "unsafe", f"created {os.listdir(tmp)}")


@case(8)
def cli_empty_out_is_refused(tmp):
    r = subprocess.run([sys.executable, "-m", "tinydeep", "demo", "quickstart", "--out", ""],
                       capture_output=True, text=True, env=_env(MPLBACKEND="Agg"), timeout=300,
                       cwd=tmp)
    expect(r.returncode == 2 and "--out" in r.stderr and "empty" in r.stderr, "poor",
           f"exit {r.returncode}: {r.stderr[-400:]}")
    expect(os.listdir(tmp) == [], "unsafe", f"created {os.listdir(tmp)}")


# === 9. messages worth a sentence ==============================================

def _ctor(fn, *patterns):
    refused(fn, (ValueError, TypeError), *patterns)


@case(9)
def linear_zero_inputs(tmp):
    _ctor(lambda: nn.Linear(0, 5), "in_features", "0")


@case(9)
def linear_negative_inputs(tmp):
    _ctor(lambda: nn.Linear(-1, 5), "in_features", "-1")


@case(9)
def linear_fractional_outputs(tmp):
    _ctor(lambda: nn.Linear(3, 2.5), "out_features", "2.5")


@case(9)
def conv2d_zero_in_channels(tmp):
    _ctor(lambda: nn.Conv2d(0, 2, 3), "in_channels", "0")


@case(9)
def conv2d_zero_kernel(tmp):
    _ctor(lambda: nn.Conv2d(1, 2, 0), "kernel_size", "0")


@case(9)
def conv2d_fractional_kernel(tmp):
    _ctor(lambda: nn.Conv2d(1, 2, 2.5), "kernel_size", "2.5")


@case(9)
def conv2d_fractional_stride(tmp):
    _ctor(lambda: nn.Conv2d(1, 2, 3, stride=1.5), "stride", "1.5")


@case(9)
def conv2d_stride_none(tmp):
    _ctor(lambda: nn.Conv2d(1, 2, 3, stride=None), "stride", "None")


@case(9)
def maxpool_zero_window(tmp):
    _ctor(lambda: nn.MaxPool2d(0), "kernel_size", "0")


@case(9)
def mlp_negative_depth(tmp):
    _ctor(lambda: nn.MLP(3, 4, -1, 2), "depth", "-1")


@case(9)
def mlp_zero_width(tmp):
    _ctor(lambda: nn.MLP(3, 0, 1, 2), "width", "0")


@case(9)
def sgd_lr_nan(tmp):
    _ctor(lambda: optim.SGD(_mlp().parameters(), lr=float("nan")), "lr", "nan")


@case(9)
def sgd_lr_inf(tmp):
    _ctor(lambda: optim.SGD(_mlp().parameters(), lr=float("inf")), "lr", "inf")


@case(9)
def sgd_lr_string(tmp):
    _ctor(lambda: optim.SGD(_mlp().parameters(), lr="0.1"), "lr", "0.1")


@case(9)
def sgd_given_ndarrays(tmp):
    _ctor(lambda: optim.SGD([np.ones(3, np.float32)], lr=0.1), "Tensor", "ndarray")


@case(9)
def sum_over_a_fractional_axis(tmp):
    _ctor(lambda: td.tensor(np.ones((2, 3))).sum(axis=1.5), "axis", "1.5")


@case(9)
def evaluate_batch_size_zero(tmp):
    x, y = _data()
    _ctor(lambda: evaluate(_mlp(), x, y, batch_size=0), "batch_size", "0")


@case(9)
def fit_fractional_epochs(tmp):
    _fit_refused(tmp, ["epochs", "2.5"], epochs=2.5)


@case(9)
def fit_zero_batch_size(tmp):
    x, y = _data()
    before = snapshot(tmp)
    refused(lambda: fit(_mlp(), x, y, 1, 0.1, batch_size=0, checkpoint=tmp / "r.npz"),
            (ValueError, TypeError), "batch_size", "0")
    untouched(before, tmp)


@case(9)
def data_folder_is_a_file(tmp):
    (tmp / "home").write_text("not a folder")
    _with_data(tmp, lambda: refused(lambda: formats.load_mnist(train=False, download=False),
                                    OSError, "home", "is a file, not a folder", "TINYDEEP_DATA"))


@case(9)
def float16_requiring_grad(tmp):
    """float16 with requires_grad: works (as float32 by default, or float16 when asked),
    or is refused naming float16 without claiming it is not floating point."""
    t = td.tensor(np.ones(3, np.float16), requires_grad=True)
    expect(t.dtype == np.float32, "silent wrong", t.dtype)
    try:
        t16 = td.tensor(np.ones(3, np.float16), requires_grad=True, dtype=np.float16)
    except (TypeError, ValueError) as e:
        expect("float16" in str(e) and "only floating-point" not in str(e), "poor", str(e))
        return
    expect(t16.dtype == np.float16, "silent wrong", t16.dtype)


@case(9)
def big_endian_requiring_grad(tmp):
    t = td.tensor(np.arange(3, dtype=">f4"), requires_grad=True)
    expect(t.dtype == np.float32 and t.numpy().tolist() == [0, 1, 2], "silent wrong", t.numpy())
    try:
        t = td.tensor(np.arange(3, dtype=">f4"), requires_grad=True, dtype=">f4")
    except (TypeError, ValueError) as e:
        expect(">f4" in str(e) or "big-endian" in str(e), "poor", str(e))
        expect("only floating-point" not in str(e), "poor", str(e))
        return
    expect(t.numpy().tolist() == [0, 1, 2], "silent wrong", t.numpy())


@case(9)
def object_dtype_requested(tmp):
    _ctor(lambda: td.tensor([1.0, 2.0], dtype=object), "object")


@case(9)
def complex_data_with_a_real_dtype(tmp):
    _ctor(lambda: td.tensor(np.ones(2, complex) * 1j, dtype=np.float32), "complex")


# === more of the same classes: neighbours of the cases above =======================

@case(3)
def save_with_an_empty_name(tmp):
    before = snapshot(tmp)
    refused(lambda: nn.save(_mlp(), ""), ValueError, "empty name")
    untouched(before, tmp)


@case(3)
def save_something_that_is_not_a_module(tmp):
    before = snapshot(tmp)
    refused(lambda: nn.save([_mlp()], tmp / "m.npz"), TypeError, "Module", "list")   # (a state_dict saves)
    untouched(before, tmp)


@case(3)
def results_folder_under_a_file(tmp):
    (tmp / "f").write_text("a file")
    before = snapshot(tmp)
    refused(lambda: records.check_writable(tmp / "f" / "results"), OSError, "f/results", "not a folder")
    untouched(before, tmp)


@case(3)
def a_failing_writer_leaves_the_old_file(tmp):
    records.save_json({"run": 1}, tmp / "r.json")
    before = snapshot(tmp)

    def boom(f):
        f.write(b"{half")
        raise KeyboardInterrupt
    try:
        records.atomic_write(tmp / "r.json", boom)
    except KeyboardInterrupt:
        pass
    untouched(before, tmp)


@case(4)
def load_a_missing_file(tmp):
    _load_refused(tmp, tmp / "nope.npz", "nope.npz")


@case(4)
def load_a_cut_checkpoint(tmp):
    nn.save(_mlp(), tmp / "m.npz")
    (tmp / "m.npz").write_bytes((tmp / "m.npz").read_bytes()[:300])
    _load_refused(tmp, tmp / "m.npz", "m.npz", "not a readable tinydeep checkpoint")


@case(4)
def load_an_extra_array(tmp):
    np.savez(tmp / "x.npz", **_state_with("3.weight", np.ones(2, np.float32)))
    _load_refused(tmp, tmp / "x.npz", "x.npz", r"unexpected \['3.weight'\]")


@case(4)
def load_state_dict_of_tensors_and_ints_works(tmp):
    """Valid, if unusual: tensors and integer arrays of the right shapes are copied (cast)."""
    src = _mlp(3)
    state = {k: td.tensor(v) if k.endswith("weight") else np.round(v * 0).astype(np.int64)
             for k, v in src.state_dict().items()}
    model = _mlp(4)
    model.load_state_dict(state)
    for name, p in model.named_parameters():
        want = src.state_dict()[name] if name.endswith("weight") else np.zeros(p.shape)
        expect(np.array_equal(p.numpy(), want.astype(np.float32)) and p.dtype == np.float32,
               "silent wrong", name)


@case(5)
def fit_x_as_a_list(tmp):
    _fit_refused(tmp, ["x", "NumPy array", "list"], x=_data()[0].tolist())


@case(5)
def fit_lengths_differ(tmp):
    _fit_refused(tmp, ["40 rows", "39"], y=_data()[1][:39])


@case(5)
def fit_empty_data(tmp):
    _fit_refused(tmp, ["empty"], x=np.zeros((0, 3), np.float32), y=np.zeros(0, np.int64))


@case(5)
def fit_checkpoint_onto_a_fifo(tmp):
    """The checkpoint's target is checked before the first step, not after an epoch."""
    os.mkfifo(tmp / "run.npz")
    x, y = _data()
    before = snapshot(tmp)
    with kernel_calls() as calls:
        refused(lambda: fit(_mlp(), x, y, 2, 0.1, checkpoint=tmp / "run.npz"), OSError,
                "run.npz", "FIFO", kernels_ok=True)
    expect("sgd_update" not in calls, "poor", "trained before refusing")
    untouched(before, tmp)


@case(6)
def fit_negative_momentum(tmp):
    _fit_refused(tmp, ["momentum", "-0.5"], momentum=-0.5)


@case(6)
def fit_weight_decay_nan(tmp):
    _fit_refused(tmp, ["weight_decay", "nan"], weight_decay=float("nan"))


@case(6)
def fit_stop_at_accuracy_above_one(tmp):
    _fit_refused(tmp, ["stop_at_accuracy", "2"], stop_at_accuracy=2)


@case(6)
def fit_epochs_zero(tmp):
    _fit_refused(tmp, ["epochs", "0"], epochs=0)


@case(9)
def conv2d_negative_padding(tmp):
    _ctor(lambda: nn.Conv2d(1, 2, 3, padding=-1), "padding", "-1")


@case(9)
def maxpool_zero_stride(tmp):
    _ctor(lambda: nn.MaxPool2d(2, stride=0), "stride", "0")


@case(9)
def sgd_negative_momentum(tmp):
    _ctor(lambda: optim.SGD(_mlp().parameters(), lr=0.1, momentum=-1), "momentum", "-1")


@case(9)
def sgd_no_parameters(tmp):
    _ctor(lambda: optim.SGD([], lr=0.1), "empty")


@case(9)
def loader_transform_not_callable(tmp):
    x, y = _data()
    _ctor(lambda: td.data.DataLoader(x, y, 8, transform="flip"), "transform", "str")


@case(9)
def loader_batch_size_string(tmp):
    x, y = _data()
    _ctor(lambda: td.data.DataLoader(x, y, "8"), "batch_size", "'8'")


@case(8)
def cli_unknown_demo_is_one_line(tmp):
    r = subprocess.run([sys.executable, "-m", "tinydeep", "demo", "nosuch"], capture_output=True,
                       text=True, env=_env(), timeout=300, cwd=tmp)
    expect(r.returncode != 0 and "unknown demo 'nosuch'" in r.stderr and "Traceback" not in r.stderr,
           "poor", f"exit {r.returncode}: {r.stderr[-300:]}")
    expect(os.listdir(tmp) == [], "unsafe", os.listdir(tmp))


@case(8)
def sigterm_during_a_plain_save(tmp):
    """SIGTERM while any script writes a file through atomic_write (no fit, no CLI): the
    old file stays, the temporary one goes, the exit status is 143."""
    records.save_json({"run": 1}, tmp / "r.json")
    before = snapshot(tmp)
    script = textwrap.dedent(f"""
        import sys, time
        from tinydeep.files import atomic_write
        def slow(f):
            f.write(b"{{half")
            print("writing", flush=True)
            time.sleep(60)
        atomic_write({str(tmp / 'r.json')!r}, slow)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env(), preexec_fn=_default_signals)
    expect(p.stdout.readline().strip() == "writing", "poor", "the writer did not start")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    expect(p.returncode == 143 and "Traceback" not in err, "poor", f"exit {p.returncode}: {err[-400:]}")
    untouched(before, tmp)
