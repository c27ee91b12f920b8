"""IDX and CIFAR-10 binary parsing, and the download path run for real against a
loopback HTTP server that serves small files written here."""
import gzip
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydeep.data import formats, load_cifar10, load_fashion_mnist, load_mnist


# --- writing the formats --------------------------------------------------------

def idx_bytes(a, type_code=0x08):
    a = np.asarray(a)
    header = bytes([0, 0, type_code, a.ndim]) + b"".join(s.to_bytes(4, "big") for s in a.shape)
    return header + a.astype(formats.IDX_TYPES[type_code]).tobytes()


def cifar_bytes(images, labels):
    return b"".join(bytes([l]) + im.tobytes() for im, l in zip(images, labels))


def md5(data):
    return hashlib.md5(data).hexdigest()


def mnist_set(rng, n):
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_mnist_gz(folder, prefix, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    blobs = {f"{prefix}-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
             f"{prefix}-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels))}
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    return {name: md5(blob) for name, blob in blobs.items()}


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TINYDEEP_DATA", str(home))
    return home


# --- parsing ----------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(formats.IDX_TYPES))
def test_idx_round_trip(code, rng):
    a = (rng.standard_normal((3, 4, 5)) * 50).astype(formats.IDX_TYPES[code])
    if code == 0x08:
        a = np.abs(a)
    np.testing.assert_array_equal(formats.parse_idx(idx_bytes(a, code)), a)


def test_idx_refuses_wrong_magic_truncation_and_trailing_bytes():
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    with pytest.raises(ValueError, match="not an IDX file"):
        formats.parse_idx(b"\x01" + good[1:])
    with pytest.raises(ValueError, match="not an IDX file"):
        formats.parse_idx(good[:2] + b"\x07" + good[3:])
    with pytest.raises(ValueError, match="truncated"):
        formats.parse_idx(good[:-1])
    with pytest.raises(ValueError, match="truncated IDX header"):
        formats.parse_idx(good[:6])
    with pytest.raises(ValueError, match="trailing"):
        formats.parse_idx(good + b"\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_parsers(data):
    for parse in (formats.parse_idx, formats.parse_cifar_batch):
        try:
            parse(data)
        except ValueError:
            pass


gzip_like = st.one_of(st.binary(max_size=200),                        # not gzip at all
                      st.binary(max_size=200).map(gzip.compress),        # gzip of random bytes
                      st.binary(max_size=200).map(lambda b: gzip.compress(b)[:-5]))  # cut short


@settings(max_examples=150, deadline=None)
@given(blob=gzip_like)
def test_random_bytes_as_gzip_give_a_clean_error(blob, tmp_path_factory):
    path = tmp_path_factory.mktemp("gz") / "x.gz"
    path.write_bytes(blob)
    try:
        formats.parse_idx(formats._read(path), str(path))
    except ValueError:
        pass


def test_cifar_batch_layout():
    images = np.zeros((2, 3, 32, 32), np.uint8)
    images[:, 0], images[:, 1], images[:, 2] = 10, 20, 30  # red, green, blue planes
    images[1, 2, 5, 7] = 99
    x, y = formats.parse_cifar_batch(cifar_bytes(images, [3, 9]))
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [3, 9]
    with pytest.raises(ValueError, match="whole number"):
        formats.parse_cifar_batch(cifar_bytes(images, [3, 9])[:-1])
    with pytest.raises(ValueError, match="expected 3"):
        formats.parse_cifar_batch(cifar_bytes(images, [3, 9]), records=3)
    with pytest.raises(ValueError, match="label"):
        formats.parse_cifar_batch(cifar_bytes(images, [3, 12]))


# --- loading files already in place -----------------------------------------------

def test_load_mnist_from_local_files(data_home, rng):
    images, labels = mnist_set(rng, 7)
    write_mnist_gz(data_home / "mnist", "t10k", images, labels)
    x, y = load_mnist(train=False, download=False)
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


def test_unpacked_idx_files_are_read_too(data_home, rng):
    images, labels = mnist_set(rng, 4)
    folder = data_home / "fashion-mnist"
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    x, y = load_fashion_mnist(train=True, download=False)
    np.testing.assert_array_equal(y, labels)


def test_count_mismatch_between_images_and_labels(data_home, rng):
    images, labels = mnist_set(rng, 5)
    write_mnist_gz(data_home / "mnist", "train", images, labels[:4])
    with pytest.raises(ValueError, match="5 images .* but 4 labels"):
        load_mnist(download=False)


def test_images_and_labels_swapped_is_refused(data_home, rng):
    images, labels = mnist_set(rng, 5)
    write_mnist_gz(data_home / "mnist", "train", images, labels)
    folder = data_home / "mnist"
    a, b = folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
    blob = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(blob)
    with pytest.raises(ValueError, match="expected uint8 images"):
        load_mnist(download=False)


def test_missing_files_without_download_name_files_and_folder(data_home):
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert str(data_home / "mnist") in msg


# --- downloading from a loopback server ------------------------------------------

class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; under /truncated/ it promises more bytes than it sends."""

    def do_GET(self):
        if self.path.startswith("/truncated/"):
            self.send_response(200)
            self.send_header("Content-Length", str(10_000))
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"   # nothing listens there once the socket is closed


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_download_good_files(server, data_home, monkeypatch, rng):
    root, url = server
    images, labels = mnist_set(rng, 9)
    sums = write_mnist_gz(root / "good", "train", images, labels)
    monkeypatch.setitem(formats.RESOURCES, "mnist",
                        {"dir": "mnist", "mirrors": [url + "/missing/", url + "/good/"], "files": sums})
    x, y = load_mnist(train=True)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    folder = data_home / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(sums)
    for name, digest in sums.items():  # stored bytes are what the server published
        assert md5((folder / name).read_bytes()) == digest
    # a second call reads from disk: the server no longer needs to hold the files
    for f in (root / "good").iterdir():
        f.unlink()
    np.testing.assert_array_equal(load_mnist(train=True)[1], labels)


def test_checksum_mismatch_leaves_nothing_behind(server, data_home, monkeypatch, rng):
    root, url = server
    sums = write_mnist_gz(root / "good", "train", *mnist_set(rng, 3))
    bad = dict(sums)
    bad["train-images-idx3-ubyte.gz"] = "0" * 32
    monkeypatch.setitem(formats.RESOURCES, "mnist",
                        {"dir": "mnist", "mirrors": [url + "/good/"], "files": bad})
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_mnist(train=True)
    folder = data_home / "mnist"
    assert not (folder / "train-images-idx3-ubyte.gz").exists()
    assert leftovers(folder) == []


def test_truncated_transfer_leaves_nothing_behind(server, data_home, monkeypatch, rng):
    root, url = server
    sums = write_mnist_gz(root / "good", "train", *mnist_set(rng, 3))
    monkeypatch.setitem(formats.RESOURCES, "mnist",
                        {"dir": "mnist", "mirrors": [url + "/truncated/good/"], "files": sums})
    with pytest.raises(FileNotFoundError, match="download failed"):
        load_mnist(train=True)
    folder = data_home / "mnist"
    assert list(folder.iterdir()) == []


def test_corrupt_file_with_its_published_checksum(server, data_home, monkeypatch, rng):
    # the server publishes a file that is damaged at the source: the checksum passes, the
    # parser must refuse it, naming the file
    root, url = server
    images, labels = mnist_set(rng, 3)
    sums = write_mnist_gz(root / "good", "train", images, labels)
    damaged = gzip.compress(b"\x00\x00\x08\x03" + idx_bytes(images)[4:-10])
    (root / "good" / "train-images-idx3-ubyte.gz").write_bytes(damaged)
    sums["train-images-idx3-ubyte.gz"] = md5(damaged)
    monkeypatch.setitem(formats.RESOURCES, "mnist",
                        {"dir": "mnist", "mirrors": [url + "/good/"], "files": sums})
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: truncated"):
        load_mnist(train=True)


def test_offline_error_names_the_files_and_the_folder(data_home, monkeypatch):
    table = dict(formats.RESOURCES["fashion_mnist"], mirrors=[closed_port_url()])
    monkeypatch.setitem(formats.RESOURCES, "fashion_mnist", table)
    with pytest.raises(FileNotFoundError) as e:
        load_fashion_mnist(train=False)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(data_home / "fashion-mnist") in msg
    assert leftovers(data_home / "fashion-mnist") == []


def cifar_archive(batches, extra=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in list(batches.items()) + list(extra):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def cifar_batches(rng, records):
    out, truth = {}, {}
    for name in formats.CIFAR_TRAIN + formats.CIFAR_TEST:
        images = rng.integers(0, 256, (records, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, records, dtype=np.uint8)
        out[f"{formats.CIFAR_DIR}/{name}"] = cifar_bytes(images, labels)
        truth[name] = images, labels
    return out, truth


def serve_cifar(root, url, monkeypatch, archive, records):
    (root / "cifar").mkdir()
    (root / "cifar" / "cifar-10-binary.tar.gz").write_bytes(archive)
    monkeypatch.setitem(formats.RESOURCES, "cifar10",
                        {"dir": "", "mirrors": [url + "/cifar/"], "records_per_batch": records,
                         "files": {"cifar-10-binary.tar.gz": md5(archive)}})


def test_cifar_download_extract_and_load(server, data_home, monkeypatch, rng):
    root, url = server
    batches, truth = cifar_batches(rng, records=3)
    serve_cifar(root, url, monkeypatch, cifar_archive(batches), records=3)
    x, y = load_cifar10(train=True)
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    want = np.concatenate([truth[n][0] for n in formats.CIFAR_TRAIN])
    np.testing.assert_allclose(x * 255, want, atol=1e-4)
    xt, yt = load_cifar10(train=False)
    np.testing.assert_array_equal(yt, truth["test_batch.bin"][1])
    assert leftovers(data_home) == []


def test_cifar_count_mismatch(server, data_home, monkeypatch, rng):
    root, url = server
    batches, _ = cifar_batches(rng, records=3)
    serve_cifar(root, url, monkeypatch, cifar_archive(batches), records=4)
    with pytest.raises(ValueError, match="holds 3 records, expected 4"):
        load_cifar10(train=False)


def test_cifar_tar_with_path_traversal_is_refused(server, data_home, monkeypatch, rng, tmp_path):
    root, url = server
    batches, _ = cifar_batches(rng, records=2)
    evil = [("../../evil.txt", b"pwned"), ("/tmp/evil_abs.txt", b"pwned")]
    serve_cifar(root, url, monkeypatch, cifar_archive(batches, extra=evil[:1]), records=2)
    with pytest.raises(ValueError, match="cannot extract"):
        load_cifar10(train=True)
    assert not (tmp_path / "evil.txt").exists() and not (data_home.parent / "evil.txt").exists()
    assert leftovers(data_home) == []


def test_cifar_not_a_tar(server, data_home, monkeypatch):
    root, url = server
    serve_cifar(root, url, monkeypatch, gzip.compress(b"definitely not a tar" * 50), records=2)
    with pytest.raises(ValueError, match="cannot extract"):
        load_cifar10(train=True)


def test_cifar_offline_names_archive_and_unpacked_files(data_home, monkeypatch):
    table = dict(formats.RESOURCES["cifar10"], mirrors=[closed_port_url()])
    monkeypatch.setitem(formats.RESOURCES, "cifar10", table)
    with pytest.raises(FileNotFoundError) as e:
        load_cifar10(train=True)
    msg = str(e.value)
    assert "cifar-10-binary.tar.gz" in msg and "data_batch_1.bin" in msg and str(data_home) in msg


def test_published_table_is_well_formed():
    for spec in formats.RESOURCES.values():
        assert spec["mirrors"] and all(m.endswith("/") for m in spec["mirrors"])
        for digest in spec["files"].values():
            assert len(digest) == 32 and int(digest, 16) >= 0
