"""Writing files so a crash, Ctrl-C or a full disk never leaves a half-written one:
write to a temporary name in the same folder, then rename over the target (a rename
within one file system is atomic: a reader sees the old file or the new one, never a
mix). A folder that cannot be written, or a disk that fills up, raises an OSError
that names the path and the reason, and the temporary file is removed."""
import errno
import os
import tempfile

# The permission bits a plain open() would give a new file: 0o666 minus the umask.
# mkstemp makes its files 0o600 (private), which is wrong for results meant to be shared.
# os.umask can only be read by setting it, so it is read once, here.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

_REASONS = {errno.ENOSPC: "no space left on the device",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied (the folder is read-only for this user)",
            errno.EPERM: "operation not permitted"}


def _explain(e, what, path):
    """The same kind of OSError (PermissionError, …), with a sentence naming the path."""
    reason = _REASONS.get(e.errno, e.strerror or str(e))
    return type(e)(e.errno, f"cannot write {what} {path}: {reason}; "
                            f"nothing was written (an existing file is left as it was)")


def check_writable(folder):
    """Create `folder` if needed and prove a file can be made in it, so a long run
    fails at its start, not at its end, when its results cannot be saved."""
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _explain(e, "into the folder", folder) from None
    return folder


def atomic_write(path, write):
    """Call write(f) on a binary file that appears at `path` complete or not at all."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    except OSError as e:
        raise _explain(e, "the file", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _REASONS:
            raise _explain(e, "the file", path) from None
        raise
    return path
