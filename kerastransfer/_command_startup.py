"""Keep TensorFlow's benign native lines off the terminal of our commands and recipes.

TensorFlow's C++ side writes to file descriptor 2 itself: `TF_CPP_MIN_LOG_LEVEL` (2 here by
default: I and W lines hidden, E lines kept) does not reach its lines printed before logging is
set up, and 3 would hide every error of TensorFlow. So in quiet mode fd 2 goes, for the whole
run, to a keeper process that passes each line on to the terminal as it arrives (a line's start
that waits over 0.1 s for its end goes out too), except:

- Every line printed while TensorFlow is imported ("WARNING: All log messages before
  absl::InitializeLog() is called are written to STDERR", "oneDNN custom operations are on",
  "Could not find cuda drivers", each from two of its libraries; a GPU machine's registration
  lines): held, dropped when the import succeeds, written out when it raises (before the
  traceback) or when the process dies in it (a crash, an abort). `quiet_native_output` holds a
  later block's lines the same way.
- At any time, the lines of `DROPPED`, each matched in full (TensorFlow's native prefix,
  `E0000 00:00:1.5 123 file.cc:45] `, and the message; see `dropped`):
  - the start-up lines above and the CPU-instructions line (cpu_feature_guard) with its
    "To enable the following instructions: ..." line, should a library print them later;
  - "failed call to cuInit: ..." (E; the CUDA probe at the first device listing or op on a
    machine without a usable GPU);
  - "NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition:
    Op<name=MapDataset; ...> This may be expected if your graph generating binary is newer than
    this binary. Unknown attributes will be ignored. ..." (E, harmless, at any point of a
    training run: under `tf.config.experimental.enable_op_determinism()` TensorFlow rewrites
    the parallel maps of a tf.data pipeline that holds a stateful op, such as the seed generator
    of a random augmentation layer, into sequential ones, and logs this).

Any other native line (a real TensorFlow error, an F line before an abort) reaches the terminal.
`TF_CPP_MIN_LOG_LEVEL=0` shows every line (no keeper). Python's own `sys.stderr` (warnings,
tracebacks) writes to the terminal directly, not through the keeper. At exit every line has been
written out before the interpreter ends; the keeper then ends when the last holder of its pipe
(this process, or a child started from it) closes it. It ignores Ctrl-C, so the lines of an
interrupted run still come out.

Who gets this: the `kerastransfer` command (the console script, `python -m kerastransfer` or
`python -m kerastransfer.cli`; every sub-command) and a program that sets
`KERASTRANSFER_QUIET_STARTUP=1` before importing kerastransfer, as the recipes' `_common.py` does.
A program that imports `kerastransfer` as a library is not touched.
"""

import atexit
import contextlib
import io
import os
import re
import secrets
import select
import subprocess
import sys
import threading

_MODULES = ("kerastransfer", "kerastransfer.cli")
REQUEST = "KERASTRANSFER_QUIET_STARTUP"  # "1": a script asks for the command's quiet start-up
_NATIVE = r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] "  # absl's line prefix
DROPPED = (  # the benign lines dropped at any time (see the module), each matched in full
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    _NATIVE + r"oneDNN custom operations are on\. .*",
    _NATIVE + r"Could not find cuda drivers on your machine, GPU will not be used\.",
    _NATIVE + r"This TensorFlow binary is optimized to use available CPU instructions in "
    r"performance-critical operations\.",
    r"To enable the following instructions: [\w ]+, in other operations, rebuild TensorFlow "
    r"with the appropriate compiler flags\.",
    _NATIVE + r"failed call to cuInit: .*",
    _NATIVE + r"NodeDef mentions attribute use_unbounded_threadpool which is not in the op "
    r"definition: Op<name=\w+; .*",
)
# The keeper: argv[1] starts the parent's command lines (hold, release, drop, sync: each answered
# with one byte on stdout), argv[2] is DROPPED as one pattern. Reads fd 0, writes fd 2.
_KEEPER = r"""
import os, re, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
token, dropped = os.fsencode(sys.argv[1]), re.compile(os.fsencode(sys.argv[2]))
held, midline, rest = None, False, b""

def write(data):
    while data:
        try:
            data = data[os.write(2, data):]
        except OSError:  # no terminal any more: go on reading, so the writers never block
            return

def line(data):  # a line, or the start of one that waited too long
    global held, midline
    data, command, name = data.partition(token)  # a command may end a line's start
    if data and held is not None:
        held.append(data)
    elif data and (midline or data[-1:] != b"\n" or not dropped.fullmatch(data.rstrip())):
        write(data)
    midline = data[-1:] != b"\n" if data else midline
    if command:
        if name.strip() == b"release":
            write(b"".join(held or []))
        if name.strip() != b"sync":
            held = [] if name.strip() == b"hold" else None
        try:
            os.write(1, b".")
        except OSError:
            pass

def waited():  # no more data for 0.1 s (select on a pipe: POSIX only)
    return os.name == "posix" and not select.select([0], [], [], 0.1)[0]

while True:
    if rest and (len(rest) > 65536 or waited()):
        line(rest)
        rest = b""
    chunk = os.read(0, 65536)
    if not chunk:
        break
    *lines, rest = (rest + chunk).split(b"\n")
    for data in lines:
        line(data + b"\n")
if rest:
    line(rest)
write(b"".join(held or []))  # the process ended inside a held block (a crash)
"""
_keeper = None  # the keeper (subprocess.Popen) once fd 2 goes to it
_pid = None  # the process that started it (a forked child leaves it alone)
_token = b""  # a line that starts with it is a command to the keeper
_lock = threading.Lock()


def running_as_command():
    """True in the `kerastransfer` console script and under `python -m kerastransfer[.cli]`."""
    argv = getattr(sys, "orig_argv", None) or getattr(sys, "argv", None) or [""]
    if any(os.path.basename(a) == "kerastransfer" for a in argv[1:2]):
        return True
    return any(a == "-m" and b in _MODULES for a, b in zip(argv, argv[1:]))


def quiet_requested():
    """The command, or a script that set KERASTRANSFER_QUIET_STARTUP=1, unless the user set
    TF_CPP_MIN_LOG_LEVEL=0 (show everything)."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return False
    return running_as_command() or os.environ.get(REQUEST) == "1"


def dropped(line):
    """Whether the keeper drops `line` outside a held block.

    >>> dropped("E0000 00:00:1796515527.646706   20107 cuda_platform.cc:52] failed call to "
    ...         "cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
    True
    >>> dropped("E0000 00:00:1.0 1 node_def_util.cc:682] NodeDef mentions attribute "
    ...         "use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; "
    ...         "signature=...> This may be expected ... {{node ParallelMapDatasetV2/_15}}")
    True
    >>> dropped("E0000 00:00:1.0 1 something.cc:1] a real error")
    False
    >>> dropped("failed call to cuInit: without the native prefix")
    False
    """
    return re.fullmatch("|".join(DROPPED), line.rstrip("\r\n")) is not None


@contextlib.contextmanager
def quiet_native_output():
    """In quiet mode (`quiet_requested()`): fd 2 goes to the keeper (from now on, for the whole
    run), and the block's native lines are held: dropped when it succeeds, written out when it
    raises or the process dies in it (see the module)."""
    if not quiet_requested():
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not _start_keeper():
        yield
        return
    _tell(b"hold")
    try:
        yield
    except BaseException:
        _tell(b"release")  # the held lines come before the traceback
        raise
    _tell(b"drop")


# Wraps kerastransfer's `import tensorflow`; the same thing, named for what it is used for.
quiet_native_startup = quiet_native_output


def _start_keeper():
    """Once per process: sends fd 2 to the keeper, and `sys.stderr` to a copy of the terminal's
    fd 2. False where that cannot be done (no fd 2, no interpreter): then nothing is hidden."""
    global _keeper, _pid, _token
    if _keeper is not None:
        return _pid == os.getpid()
    if sys.stderr is None:
        return False
    sys.stderr.flush()
    token = f"[kerastransfer keeper {secrets.token_hex(8)}] "
    terminal = None
    try:
        terminal = os.dup(2)
        keeper = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _KEEPER, token, "|".join(DROPPED)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
    except (OSError, ValueError):
        if terminal is not None:
            os.close(terminal)
        return False
    stream = io.TextIOWrapper(  # Python's writes (warnings, tracebacks) go to the terminal
        io.FileIO(terminal, "w"),
        getattr(sys.stderr, "encoding", None),
        "backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    with contextlib.suppress(AttributeError, OSError, ValueError):
        if sys.stderr.fileno() == 2:  # not a notebook's stream, say
            sys.stderr = stream
    os.dup2(keeper.stdin.fileno(), 2)
    keeper.stdin.close()  # fd 2 (a child's too) is its only writing end: closed, the keeper ends
    _keeper, _pid, _token = keeper, os.getpid(), os.fsencode(token)
    atexit.register(_stop_keeper, stream)
    return True


def _tell(command):
    """Writes a command line to the keeper through fd 2 and waits for its answer, so the lines
    written before it have been handled."""
    if _keeper is None or _pid != os.getpid():
        return
    with _lock, contextlib.suppress(OSError, ValueError):
        os.write(2, _token + command + b"\n")
        answer = _keeper.stdout.fileno()
        if os.name != "posix" or select.select([answer], [], [], 10)[0]:
            os.read(answer, 1)


def _stop_keeper(stream):
    """At exit: the lines written so far reach the terminal, fd 2 is the terminal again, and the
    keeper ends (unless a child process still holds its pipe)."""
    if _pid != os.getpid():
        return
    _tell(b"sync")
    with contextlib.suppress(OSError, ValueError):
        stream.flush()
        os.dup2(stream.fileno(), 2)
    with contextlib.suppress(subprocess.TimeoutExpired):
        _keeper.wait(timeout=1)
