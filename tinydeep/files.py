"""Writing files so a crash, a signal or a full disk never leaves a half-written one:
write to a temporary name in the same folder, then rename over the target (a rename
within one file system is atomic: a reader sees the old file or the new one, never a
mix). A folder that cannot be written, or a disk that fills up, raises an OSError
that names the path and the reason, and the temporary file is removed.

The policy for what is already at the target (decided here, once, for every writer):
  nothing            a new regular file with the bits a plain open() gives (0o666 − umask)
  a regular file     replaced; it keeps its permission bits (a 0600 checkpoint stays 0600)
  a read-only file   refused (PermissionError): no write bit set means "keep this",
                     and a rename would ignore that, even for root
  a symlink          followed, as open() would: the file it points to is replaced (in
                     its own folder) and the link stays a link; a dangling link is refused
  anything else      refused (IsADirectoryError for a folder, OSError for a FIFO, a
                     socket or a device): renaming over /dev/null or a pipe would
                     replace the node, not write into it
Refusals happen before write() is called, so no work is done for nothing.
"""
import contextlib
import errno
import os
import stat
import tempfile

from .signals import signals_raise

# The permission bits a plain open() would give a new file: 0o666 minus the umask.
# mkstemp makes its files 0o600 (private), which is wrong for results meant to be shared.
# os.umask can only be read by setting it, so it is read once, here.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

# a folder with less free space than this is "full": a run would fail when it saves
MIN_FREE_BYTES = 1 << 20

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


def _kind(mode):
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def resolve_target(path):
    """(the real path to replace, the permission bits to give it), or an OSError naming
    `path` when the policy above refuses what is there."""
    path = os.fspath(path)
    real = os.path.realpath(path)
    if os.path.islink(path) and not os.path.lexists(real):
        raise FileNotFoundError(errno.ENOENT, f"cannot write the file {path}: it is a symlink to "
                                              f"{real}, which does not exist; nothing was written")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real, FILE_MODE
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"cannot write the file {path}: it is a folder; "
                                              f"nothing was written")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"cannot write the file {path}: it is {_kind(st.st_mode)}, "
                                    f"not a regular file, and would be replaced, not written "
                                    f"into; nothing was written")
    if not st.st_mode & 0o222 or not os.access(real, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot write the file {path}: it is read-only "
                                            f"(mode {stat.S_IMODE(st.st_mode):#o}); make it "
                                            f"writable or choose another name; nothing was written")
    return real, stat.S_IMODE(st.st_mode)


def check_writable(folder):
    """Prove a file can be written in `folder`: a small probe is written, fsynced and
    removed, and the free space is checked, so a long run fails at its start, not at its
    end, when its results cannot be saved. A folder that does not exist yet is not
    created here (a run refused later for another reason leaves nothing behind): the
    probe goes into its nearest existing parent, which is where it will be created."""
    folder = os.fspath(folder)
    if folder == "":
        raise ValueError("the output folder is an empty string; give a folder name (e.g. results)")
    where = os.path.abspath(folder)
    while not os.path.exists(where):
        where = os.path.dirname(where)
    try:
        if not os.path.isdir(where):
            raise NotADirectoryError(errno.ENOTDIR, f"{where} is a file, not a folder")
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=where)
        try:
            os.write(fd, b"tinydeep probe\n" * 256)   # 4 KiB: a block must be allocated
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
        fs = os.statvfs(where)
        if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as e:
        raise _explain(e, "into the folder", folder) from None
    return folder


def atomic_write(path, write):
    """Call write(f) on a binary file that appears at `path` complete or not at all;
    what is already at `path` is handled as the module docstring says."""
    path = os.fspath(path)
    if path == "":
        raise ValueError("cannot write a file with an empty name")
    real, mode = resolve_target(path)
    folder = os.path.dirname(real)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(real)[1], dir=folder)
    except OSError as e:
        raise _explain(e, "the file", path) from None
    with signals_raise():  # SIGTERM/SIGHUP raise here, so the temporary file is removed
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())  # the bytes are on disk before the name points at them
            os.chmod(tmp, mode)
            os.replace(tmp, real)
        except BaseException as e:
            # (a signal that arrives just after os.replace finds the file already in place)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(e, OSError) and e.errno in _REASONS:
                raise _explain(e, "the file", path) from None
            raise
    return path
