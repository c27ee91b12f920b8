"""Checkpoints: a Module's parameters and buffers (or any state_dict of named arrays) in an
.npz file (NumPy's zip of .npy arrays), never pickled. `save` writes the file whole or not
at all (tinydeep.files); `read` checks every member's header against its size, and `load`
every name, shape and dtype against the module before it copies anything in. Reached as
nn.save / nn.load, and as tinydeep.save / tinydeep.load (torch's names: load gives the
state_dict, for model.load_state_dict).
"""
import math
import os
import zipfile

import numpy as np

from .files import atomic_write
from .nn import Module
from .tensor import Tensor


def save(obj, path):
    """Write a Module's state_dict(), or a state_dict (name -> array or Tensor), to `path`
    (.npz, no pickle). The file appears complete or not at all: written to a temporary
    name, then renamed (see tinydeep.files for a symlink, a read-only file or a device)."""
    state = obj.state_dict() if isinstance(obj, Module) else obj
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise TypeError(f"save: expected a Module or a state_dict (names -> arrays), got "
                        f"{type(obj).__name__}; tinydeep writes arrays only, never pickles")
    state = {k: v.numpy() if isinstance(v, Tensor) else v for k, v in state.items()}
    return atomic_write(path, lambda f: _write_npz(f, state))


def _write_npz(f, state):
    """What np.savez(f, **state) writes (stored, zip64), member by member: a parameter named
    'file' or 'allow_pickle' would be taken for savez's own keyword (lost, or an error)."""
    with zipfile.ZipFile(f, "w") as z:
        for name, array in state.items():
            with z.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


_NPY_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}


def _checkpoint_arrays(path):
    """name -> array of an .npz written by `save`, read without pickle. Each member's .npy
    header is read first, and a header that promises more bytes than the member holds
    (a corrupt or hostile file) is refused before anything is allocated for it."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path} is a single .npy array, not a checkpoint: a checkpoint is an "
                         f".npz of named arrays, as nn.save writes it")
    if not head.startswith(b"PK"):
        shown = "an empty file" if not head else f"bytes {head!r}"
        raise ValueError(f"{path} is not a tinydeep checkpoint (.npz, a zip of .npy arrays): "
                         f"it starts with {shown}")
    state = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            name = info.filename.removesuffix(".npy")
            where = f"{path}: array {name!r}"
            if not info.filename.endswith(".npy"):
                raise ValueError(f"{path}: member {info.filename!r} is not a .npy array")
            with z.open(info) as m:
                version = np.lib.format.read_magic(m)
                if version not in _NPY_READERS:
                    raise ValueError(f"{where} has .npy format version {version}, which tinydeep "
                                     f"does not read")
                shape, _, dtype = _NPY_READERS[version](m)
                header = m.tell()
            if dtype.hasobject:
                raise ValueError(f"{where} holds Python objects (dtype {dtype}); a checkpoint "
                                 f"holds numbers only, and unpickling objects could run code")
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes != info.file_size - header:
                raise ValueError(f"{where}: its header declares shape {shape} of {dtype} "
                                 f"({nbytes} bytes), but the file holds "
                                 f"{info.file_size - header} bytes (corrupt or truncated)")
            with z.open(info) as m:
                state[name] = np.lib.format.read_array(m, allow_pickle=False)
    return state


def read(path):
    """name -> array of a checkpoint written by `save` (tinydeep.load: torch.load's place)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a checkpoint file (.npz)")
    try:
        return _checkpoint_arrays(path)
    except (OSError, EOFError, zipfile.BadZipFile, MemoryError, NotImplementedError,
            RuntimeError) as e:   # a cut file; a flipped compression method or encryption bit
        raise ValueError(f"{path} is not a readable tinydeep checkpoint (.npz): "
                         f"{type(e).__name__}: {e}") from None
    except ValueError as e:
        message = str(e)
        if path not in message:
            message = f"{path} is not a readable tinydeep checkpoint (.npz): {message}"
        raise ValueError(message) from None


def load(module, path):
    """Load parameters saved by `save`; names, shapes and dtypes are checked for every
    array before any is copied in (Module.load_state_dict), so a refused file changes
    nothing. Never unpickles."""
    if not isinstance(module, Module):
        raise TypeError(f"nn.load: expected a Module to load into, got {type(module).__name__}")
    module.load_state_dict(read(path), source=f"checkpoint {os.fspath(path)}")
    return module
