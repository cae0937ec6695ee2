"""`atomic_write`: replace an export folder so that its path always holds a complete export.

The new export is written into a temporary sibling folder, marked as ours (a `MARKER` file), and
swapped with the destination in one step: Linux's `renameat2(RENAME_EXCHANGE)` exchanges the two
folders atomically, so at every instant the destination holds either the previous export or the
new one; the previous one is then deleted. Where the file system cannot exchange, the previous
export is renamed to a fixed backup sibling (`.NAME.backup`) before the new one is renamed into
place; a process killed between those two renames leaves the backup, which the next
`atomic_write` (or `recover`) on that path renames back before doing anything else.

An existing destination is replaced only when it is a previous export of ours (it holds
`MARKER`) or an empty folder: anything else raises `FileExistsError`, since an export never
deletes what it did not write.
"""

import ctypes
import errno
import json
import os
import shutil
import tempfile
import time

MARKER = "KERASTRANSFER_EXPORT"

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _libc_exchange():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


_renameat2 = _libc_exchange()


def exchange(a, b):
    """Atomically swap the paths `a` and `b` (both must exist); False where unsupported."""
    if _renameat2 is None:
        return False
    result = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, f"renameat2(RENAME_EXCHANGE) failed: {os.strerror(err)}", a, None, b)


def is_ours(path):
    """True when `path` is a folder holding our export marker."""
    return os.path.isfile(os.path.join(path, MARKER))


def _backup_of(path):
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.backup")


def recover(path):
    """Finish or undo an `atomic_write` on `path` that a killed process left half done.

    Restores the previous export when the destination is missing and its backup is there;
    removes leftover backups and temporary folders of ours otherwise.
    """
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.dirname(path), os.path.basename(path)
    backup = _backup_of(path)
    if os.path.isdir(backup) and is_ours(backup):
        if not os.path.exists(path):
            os.replace(backup, path)
        else:
            shutil.rmtree(backup, ignore_errors=True)
    if os.path.isdir(parent):
        for name in os.listdir(parent):
            leftover = os.path.join(parent, name)
            if name.startswith(f".{base}.tmp-") and os.path.isdir(leftover):
                # Ours by construction: only atomic_write makes folders with this prefix.
                shutil.rmtree(leftover, ignore_errors=True)
    return path


def atomic_write(path, write, *, metadata=None):
    """Call `write(tmp)` on a temporary sibling of `path`, then swap it into place.

    Args:
        path: the destination folder. If it exists it must be a previous export of ours (or an
            empty folder); otherwise `FileExistsError` says how to proceed.
        write: a function that fills the folder it is given.
        metadata: a JSON-serialisable dict stored in the marker file.

    Returns:
        The absolute destination path.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    recover(path)
    if os.path.lexists(path):
        _check_replaceable(path)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        write(tmp)
        with open(os.path.join(tmp, MARKER), "w") as f:
            json.dump({"written_by": "kerastransfer", "time": time.time(), **(metadata or {})}, f)
        if not os.path.exists(path):
            os.replace(tmp, path)
        elif exchange(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous export
        else:
            backup = _backup_of(path)
            os.replace(path, backup)
            os.replace(tmp, path)
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        recover(path)
        raise
    return path


def _check_replaceable(path):
    if os.path.isdir(path) and not os.path.islink(path):
        if is_ours(path) or not os.listdir(path):
            return
        what = "a folder that kerastransfer did not write (it has no " + MARKER + " file)"
    else:
        what = "a file" if os.path.isfile(path) else "something that is not a folder"
    raise FileExistsError(
        f"Export destination '{path}' exists and is {what}; an export never deletes what it "
        f"did not write. Delete it yourself if it is no longer needed, or choose another path."
    )
