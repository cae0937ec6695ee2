"""`atomic_write`: replace an export folder so that its path always holds a complete export.

The new export is written into a temporary sibling folder, marked as ours (a `MARKER` file), and
swapped with the destination in one step: Linux's `renameat2(RENAME_EXCHANGE)` exchanges the two
folders atomically, so at every instant the destination holds either the previous export or the
new one; the previous one is then deleted.

Where the file system cannot exchange two folders (no `rename` replaces a non-empty folder), the
destination is a symbolic link to a hidden sibling folder holding the export (`.NAME.export-*`),
and a new export replaces the link: the new folder is complete before a new link to it is
renamed over the old one (`rename` replaces a link atomically), and only then is the previous
folder deleted. A reader of the destination sees the previous export or the new one at every
instant; a process killed at any step leaves at most unused hidden folders, which the next
`atomic_write` (or `recover`) on that path deletes. A new destination is made a link from the
start on such a file system. Two cases keep the older fallback, two renames through a fixed
backup sibling (`.NAME.backup`) that `recover` renames back after a kill between them: a
destination folder written before (the one time it becomes a link), and file systems without
symbolic links.

An existing destination is replaced only when it is a previous export of ours (it holds
`MARKER`, or is our link to one) or an empty folder: anything else raises `FileExistsError`,
since an export never deletes what it did not write.
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


def _version_prefix(path):
    return f".{os.path.basename(path)}.export-"


def _link_target(path):
    """The folder our link `path` points to (an absolute path), or None when `path` is not a
    link of ours (a link to a hidden export folder of ours beside it)."""
    if not os.path.islink(path):
        return None
    target = os.readlink(path)
    if os.path.basename(target) != target or not target.startswith(_version_prefix(path)):
        return None
    folder = os.path.join(os.path.dirname(path), target)
    return folder if os.path.isdir(folder) and is_ours(folder) else None


def can_exchange(parent):
    """True when the file system of folder `parent` exchanges two folders atomically."""
    first = tempfile.mkdtemp(prefix=".kerastransfer-probe-", dir=parent)
    second = tempfile.mkdtemp(prefix=".kerastransfer-probe-", dir=parent)
    try:
        return exchange(first, second)
    finally:
        os.rmdir(first)
        os.rmdir(second)


def _link_into_place(path, tmp):
    """Moves the complete export `tmp` to a hidden version folder and points the link `path` at
    it; False (nothing changed) where the file system has no symbolic links."""
    parent = os.path.dirname(path)
    version = os.path.join(parent, _version_prefix(path) + os.path.basename(tmp).rsplit("-", 1)[-1])
    link = tmp + ".link"
    try:
        os.symlink(os.path.basename(version), link)
    except (OSError, NotImplementedError):
        return False
    previous = _link_target(path)
    os.replace(tmp, version)
    if previous is None and os.path.lexists(path):  # a folder (once) or an empty folder
        backup = _backup_of(path)
        os.replace(path, backup)
        os.replace(link, path)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(link, path)  # atomic: a reader sees the previous link or the new one
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    return True


def recover(path):
    """Finish or undo an `atomic_write` on `path` that a killed process left half done.

    Restores the previous export when the destination is missing and its backup is there;
    removes leftover backups and temporary folders of ours otherwise.
    """
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.dirname(path), os.path.basename(path)
    backup = _backup_of(path)
    if os.path.isdir(backup) and is_ours(backup):
        if not os.path.lexists(path):
            os.replace(backup, path)
        else:
            shutil.rmtree(backup, ignore_errors=True)
    live = _link_target(path)
    if os.path.isdir(parent):
        for name in os.listdir(parent):
            leftover = os.path.join(parent, name)
            # Ours by construction: only atomic_write makes names with these prefixes.
            if name.startswith(f".{base}.tmp-") and name.endswith(".link"):
                if os.path.islink(leftover):
                    os.unlink(leftover)
            elif name.startswith((f".{base}.tmp-", _version_prefix(path))):
                if os.path.isdir(leftover) and not os.path.islink(leftover) and leftover != live:
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
    blocking = next((p for p in _ancestors(parent) if os.path.isfile(p)), None)
    if blocking is not None:
        raise FileExistsError(
            f"Export destination '{path}' is inside '{blocking}', which is a file, not a "
            "folder. Choose a path in a folder."
        )
    os.makedirs(parent, exist_ok=True)
    recover(path)
    if os.path.lexists(path):
        _check_replaceable(path)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        write(tmp)
        with open(os.path.join(tmp, MARKER), "w") as f:
            json.dump({"written_by": "kerastransfer", "time": time.time(), **(metadata or {})}, f)
        _move_into_place(path, tmp)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        recover(path)
        raise
    return path


def _move_into_place(path, tmp):
    """Makes the complete export `tmp` the destination `path` (see the module docstring)."""
    linked = _link_target(path) is not None
    if not linked and os.path.lexists(path) and exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous export
    elif not linked and not os.path.lexists(path) and can_exchange(os.path.dirname(path)):
        os.replace(tmp, path)
    elif not _link_into_place(path, tmp):  # no symbolic links either: two renames
        if os.path.lexists(path):
            backup = _backup_of(path)
            os.replace(path, backup)
            os.replace(tmp, path)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, path)


def _ancestors(folder):
    while True:
        yield folder
        up = os.path.dirname(folder)
        if up == folder:
            return
        folder = up


def _check_replaceable(path):
    if _link_target(path) is not None:
        return
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
