"""MNIST, Fashion-MNIST and CIFAR-10 in their published formats, fetched if missing.

IDX (MNIST, Fashion-MNIST), big-endian:
    bytes 0-1  zero;  byte 2  element type (0x08 = uint8, …);  byte 3  ndim
    then ndim uint32 sizes, then the elements in C order.
    Images are ndim 3 (magic 0x00000803 = 2051), labels ndim 1 (0x00000801 = 2049).
CIFAR-10 binary: records of 1 label byte + 3072 pixel bytes (1024 red, 1024 green,
    1024 blue, each a 32×32 row-major plane), 10,000 records per batch file.
    (Never the pickled "python version": unpickling runs arbitrary code.)

Files live in $TINYDEEP_DATA, else ~/.cache/tinydeep. A missing file is downloaded
from the URLs in RESOURCES (a plain dict, so tests can point it elsewhere), its MD5
checked against the published value — MD5 because that is what the authors
publish; it catches corruption, not forgery — written under a temporary name in
the same directory and renamed into place, so a file under its final name is
always complete and verified.
"""
import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path

import numpy as np
from tqdm import tqdm

MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"]
FASHION_MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]

RESOURCES = {  # dataset -> sub-directory, mirrors, {file: published md5} (torchvision's table)
    "mnist": {
        "dir": "mnist",
        "mirrors": MNIST_MIRRORS,
        "files": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                  "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                  "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                  "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    },
    "fashion_mnist": {
        "dir": "fashion-mnist",
        "mirrors": FASHION_MIRRORS,
        "files": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                  "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                  "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                  "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    },
    "cifar10": {
        "dir": "",
        "mirrors": ["https://www.cs.toronto.edu/~kriz/"],
        "files": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
        "records_per_batch": 10000,
    },
}
CIFAR_DIR = "cifar-10-batches-bin"   # the folder inside the archive
CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST = ["test_batch.bin"]
TIMEOUT_S = 30


def data_dir():
    """$TINYDEEP_DATA if set, else ~/.cache/tinydeep."""
    return Path(os.environ.get("TINYDEEP_DATA") or Path.home() / ".cache" / "tinydeep")


# --- parsing ---------------------------------------------------------------------

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data, name="IDX data"):
    """bytes of an IDX file -> ndarray of the sizes its header states. Raises
    ValueError for a bad magic number, a truncated body or trailing bytes."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(f"{name}: not an IDX file (magic number {data[:4].hex() or 'missing'}; "
                         f"expected 0000 then a type code in "
                         f"{sorted(hex(t) for t in IDX_TYPES)} and ndim)")
    dtype, ndim = np.dtype(IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(data)} bytes, {ndim} sizes need {header})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = 1
    for s in shape:
        count *= s
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{name}: {what}: header says shape {shape} ({expected} bytes), "
                         f"file has {len(data)} bytes")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def parse_cifar_batch(data, name="CIFAR-10 batch", records=None):
    """bytes of a CIFAR-10 binary batch -> images (n, 3, 32, 32) uint8, labels (n,) uint8."""
    record = 1 + 3 * 32 * 32
    if len(data) == 0 or len(data) % record:
        raise ValueError(f"{name}: {len(data)} bytes is not a whole number of "
                         f"{record}-byte CIFAR-10 records (truncated or not CIFAR-10)")
    n = len(data) // record
    if records is not None and n != records:
        raise ValueError(f"{name}: holds {n} records, expected {records}")
    table = np.frombuffer(data, np.uint8).reshape(n, record)
    labels = table[:, 0]
    if labels.max() > 9:
        raise ValueError(f"{name}: label {labels.max()} outside 0..9 (not CIFAR-10?)")
    return table[:, 1:].reshape(n, 3, 32, 32), labels


def _read(path):
    """A file's bytes, gunzipped when the name ends in .gz."""
    raw = Path(path).read_bytes()
    if not str(path).endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a valid gzip file ({e})") from None


# --- fetching --------------------------------------------------------------------

def _md5(path):
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url, dest, md5):
    """url -> dest through a temporary file beside it; ValueError if the MD5 differs.
    Network failures propagate as URLError/OSError/HTTPException."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
            size = int(r.headers.get("Content-Length") or 0) or None
            got = 0
            with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
                for chunk in iter(lambda: r.read(1 << 16), b""):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            # read(n) returns short data, not an error, when the server hangs up early
            if size is not None and got != size:
                raise urllib.error.ContentTooShortError(
                    f"connection closed after {got} of {size} bytes", None)
        digest = _md5(tmp)
        if digest != md5:
            raise ValueError(f"{url}: checksum mismatch, MD5 {digest}, published {md5}; "
                             f"the download was discarded")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch(dataset, names, download=True):
    """Paths to files `names` of RESOURCES[dataset], downloading those missing.
    Offline, raises FileNotFoundError naming every missing file and where to put it."""
    spec = RESOURCES[dataset]
    folder = data_dir() / spec["dir"]
    missing = [n for n in names if not (folder / n).is_file()]
    errors = []
    if missing and download:
        folder.mkdir(parents=True, exist_ok=True)
        for name in missing:
            for mirror in spec["mirrors"]:
                try:
                    _download(mirror + name, folder / name, spec["files"][name])
                    break
                except (urllib.error.URLError, OSError, HTTPException) as e:
                    errors.append(f"{mirror + name}: {e}")
                # a checksum mismatch (ValueError) is not a network problem: it stops here
        missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        tried = ("; download failed: " + " | ".join(errors)) if errors else ""
        raise FileNotFoundError(
            f"{dataset}: missing {', '.join(missing)}. Put these files in {folder} "
            f"(or set $TINYDEEP_DATA to a directory holding {spec['dir'] or '.'}/…){tried}")
    return [folder / n for n in names]


# --- loaders ---------------------------------------------------------------------

def _load_idx_pair(dataset, train, download):
    prefix = "train" if train else "t10k"
    names = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
    folder = data_dir() / RESOURCES[dataset]["dir"]
    # already unpacked copies (without .gz) are read as they are
    if all((folder / n[:-3]).is_file() for n in names):
        paths = [folder / n[:-3] for n in names]
    else:
        paths = fetch(dataset, names, download)
    images = parse_idx(_read(paths[0]), str(paths[0]))
    labels = parse_idx(_read(paths[1]), str(paths[1]))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{paths[0]}: expected uint8 images (n, rows, cols), "
                         f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{paths[1]}: expected uint8 labels (n,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{dataset}: {len(images)} images in {paths[0].name} but "
                         f"{len(labels)} labels in {paths[1].name}")
    if len(labels) and labels.max() > 9:
        raise ValueError(f"{paths[1]}: label {labels.max()} outside 0..9")
    x = images[:, None].astype(np.float32)
    x /= 255.0
    return x, labels.astype(np.int64)


def load_mnist(train=True, download=True):
    """MNIST: images (n, 1, 28, 28) float32 in [0, 1], labels (n,) int64; n = 60000 or 10000."""
    return _load_idx_pair("mnist", train, download)


def load_fashion_mnist(train=True, download=True):
    """Fashion-MNIST, same shapes as MNIST (classes: T-shirt/top, trouser, pullover, dress,
    coat, sandal, shirt, sneaker, bag, ankle boot)."""
    return _load_idx_pair("fashion_mnist", train, download)


def _extract_cifar(archive, folder, names):
    """Unpack `names` of the archive's CIFAR_DIR into folder/CIFAR_DIR. The 'data' filter
    refuses absolute paths, '..', links out of the tree and device files."""
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{archive}: cannot extract ({type(e).__name__}: {e})") from None
        target = folder / CIFAR_DIR
        target.mkdir(exist_ok=True)
        for name in names:
            src = tmp / CIFAR_DIR / name
            if not src.is_file():
                raise ValueError(f"{archive}: has no {CIFAR_DIR}/{name}")
            os.replace(src, target / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cifar10(train=True, download=True):
    """CIFAR-10 from the binary version: images (n, 3, 32, 32) float32 in [0, 1], labels (n,)
    int64; n = 50000 or 10000 (classes: airplane, automobile, bird, cat, deer, dog, frog,
    horse, ship, truck)."""
    spec = RESOURCES["cifar10"]
    folder = data_dir() / spec["dir"]
    names = CIFAR_TRAIN if train else CIFAR_TEST
    if not all((folder / CIFAR_DIR / n).is_file() for n in names):
        try:
            (archive,) = fetch("cifar10", list(spec["files"]), download)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e} — or put the unpacked {', '.join(names)} in "
                                    f"{folder / CIFAR_DIR}") from None
        _extract_cifar(archive, folder, CIFAR_TRAIN + CIFAR_TEST)
    parts = [parse_cifar_batch(_read(folder / CIFAR_DIR / n), str(folder / CIFAR_DIR / n),
                               spec.get("records_per_batch")) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = images.astype(np.float32)
    x /= 255.0
    return x, labels.astype(np.int64)
