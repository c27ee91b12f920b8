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
import contextlib
import gzip
import hashlib
import math
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


def _dataset_folder(dataset):
    """data_dir()/RESOURCES[dataset]['dir'], refusing a path where a file stands in for a
    folder (TINYDEEP_DATA set to a file, say) with a sentence instead of NotADirectoryError
    from deep inside a download."""
    root = data_dir()
    folder = root / RESOURCES[dataset]["dir"]
    for p in (root, folder):
        if p.exists() and not p.is_dir():
            via = (" (TINYDEEP_DATA)" if p == root and os.environ.get("TINYDEEP_DATA") else "")
            raise NotADirectoryError(f"the data folder {p}{via} is a file, not a folder; point "
                                     f"TINYDEEP_DATA at a folder (it is created if missing)")
    return folder


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


# No data file tinydeep reads is this large (MNIST's training images: 47 MB, a CIFAR-10
# batch: 31 MB): a header or a gzip stream that promises more is refused before it is read,
# so a "gzip bomb" (a few KB that inflate to many GB) costs a moment, not the machine.
MAX_BYTES = 1 << 30


def _read_bounded(f, n, path):
    """Up to n bytes from file object f, in chunks (read(n) would allocate n at once)."""
    chunks, got = [], 0
    while got < n:
        chunk = f.read(min(1 << 20, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def _opened(path):
    """The file, gunzipped as it is read when the name ends in .gz; a broken gzip stream
    becomes a ValueError naming the file."""
    try:
        with (gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")) as f:
            yield f
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a valid gzip file ({e})") from None
    except OSError as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise ValueError(f"{path}: not a valid gzip file ({e})") from None


def _read(path, limit=MAX_BYTES):
    """A file's bytes, gunzipped when the name ends in .gz, never more than `limit`."""
    with _opened(path) as f:
        data = _read_bounded(f, limit + 1, path)
    if len(data) > limit:
        raise ValueError(f"{path}: holds (or inflates to) more than {limit} bytes, more than "
                         f"any data file tinydeep reads; refused without reading the rest "
                         f"(a corrupt file or a gzip bomb)")
    return data


def _read_idx(path):
    """An IDX file read as far as its header says and one byte more (to see trailing
    bytes), never further: the header is parsed first, and a stated size over MAX_BYTES
    is refused before anything else is inflated."""
    with _opened(path) as f:
        data = _read_bounded(f, 4, path)
        if len(data) == 4 and data[0] == data[1] == 0 and data[2] in IDX_TYPES:
            data += _read_bounded(f, 4 * data[3], path)
            if len(data) == 4 + 4 * data[3]:
                shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(data[3])]
                body = math.prod(shape) * np.dtype(IDX_TYPES[data[2]]).itemsize
                if body > MAX_BYTES:
                    raise ValueError(f"{path}: IDX header states shape {tuple(shape)} ({body} "
                                     f"bytes), more than any data file tinydeep reads; refused "
                                     f"before inflating it (a corrupt file or a gzip bomb)")
                data += _read_bounded(f, body + 1, path)
    return parse_idx(data, str(path))


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
    folder = _dataset_folder(dataset)
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
    folder = _dataset_folder(dataset)
    # each file: an unpacked copy (without .gz) if there is one, else the .gz, which is
    # downloaded only if neither is there (unpacked images beside .gz labels: no network)
    local = {n: folder / n[:-3] if (folder / n[:-3]).is_file() else folder / n for n in names}
    fetched = iter(fetch(dataset, [n for n in names if not local[n].is_file()], download))
    paths = [local[n] if local[n].is_file() else next(fetched) for n in names]
    images = _read_idx(paths[0])
    labels = _read_idx(paths[1])
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


def _cifar_filter(archive, names, limit):
    """A tarfile extraction filter: the 'data' filter (no absolute paths, no '..', no links
    out of the tree, no device files), and then more: no links at all (a relative link
    that stays inside the extraction folder, cifar-10-batches-bin/data_batch_1.bin ->
    ../victim.bin, would point out of it once moved into place), no member larger than a
    batch can be, and only the batch files are written (the rest is skipped)."""
    wanted = {f"{CIFAR_DIR}/{n}" for n in names}

    def keep(member, dest):
        member = tarfile.data_filter(member, dest)
        if not (member.isfile() or member.isdir()):
            kind = "a link" if member.issym() or member.islnk() else "not a regular file"
            raise ValueError(f"{archive}: member {member.name!r} is {kind}; a CIFAR-10 "
                             f"archive holds only files and folders, nothing was extracted")
        if member.isdir() or member.name not in wanted:
            return None
        if member.size > limit:
            raise ValueError(f"{archive}: member {member.name!r} is {member.size} bytes, more "
                             f"than a CIFAR-10 batch ({limit}); nothing was extracted")
        return member
    return keep


def _extract_cifar(archive, folder, names):
    """Unpack `names` of the archive's CIFAR_DIR into folder/CIFAR_DIR (see _cifar_filter
    for what is refused)."""
    records = RESOURCES["cifar10"].get("records_per_batch") or 10000
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter=_cifar_filter(archive, names, records * 3073))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{archive}: cannot extract ({type(e).__name__}: {e})") from None
        target = folder / CIFAR_DIR
        target.mkdir(exist_ok=True)
        for name in names:
            src = tmp / CIFAR_DIR / name
            if src.is_symlink() or not src.is_file():
                raise ValueError(f"{archive}: has no {CIFAR_DIR}/{name}")
            os.replace(src, target / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cifar10(train=True, download=True):
    """CIFAR-10 from the binary version: images (n, 3, 32, 32) float32 in [0, 1], labels (n,)
    int64; n = 50000 or 10000 (classes: airplane, automobile, bird, cat, deer, dog, frog,
    horse, ship, truck)."""
    spec = RESOURCES["cifar10"]
    folder = _dataset_folder("cifar10")
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
