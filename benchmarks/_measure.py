"""What the benchmark scripts share: the command line of a run, timings, peak memory, children.

Timings take turns (`interleaved_times`), so a change in machine load during a run hits every
variant alike; the scripts keep the fastest or the median of the repeats. Peak memory comes from
the accelerator's allocator where there is one (`accelerator_peak`,
`tf.config.experimental.get_memory_info`); on CPU, where TensorFlow keeps no such statistics, from
the resident set of a process (`rss_growth`, or a fresh process per pass through `run_json`).
"""

import json
import os
import pathlib
import shlex
import subprocess
import threading
import time

import keras
import tensorflow as tf

REPO = pathlib.Path(__file__).resolve().parents[1]


def command_line(script, argv):
    """`python benchmarks/NAME.py ARGS...`, the command that repeats a run, for its report."""
    path = pathlib.Path(script).resolve().relative_to(REPO)
    return shlex.join(["python", path.as_posix(), *argv])


def timed(fn):
    """Seconds that `fn()` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_times(fns, repeats, warmup=True):
    """Times each no-argument function of `fns` (name -> function) `repeats` times, in turns.

    With `warmup`, each function first runs once untimed (tracing, first-call costs).

    Returns:
        `(wall, cpu)`: two dicts name -> list of `repeats` seconds, wall-clock time and the
        process's CPU time (all threads; other processes on a shared machine disturb it less).
    """
    if warmup:
        for fn in fns.values():
            fn()
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


class EpochTimer(keras.callbacks.Callback):
    """Records the seconds of each epoch of a `fit` in `times` (fit's own set-up left out)."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def accelerator():
    """The name of the first logical GPU (`"GPU:0"`), or None where there is none."""
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name.replace("/device:", "") if gpus else None


def accelerator_peak(fn, device):
    """Runs `fn()`; returns (its result, the allocator's peak bytes on `device` above the start)."""
    tf.config.experimental.reset_memory_stats(device)
    before = tf.config.experimental.get_memory_info(device)["current"]
    result = fn()
    return result, tf.config.experimental.get_memory_info(device)["peak"] - before


def rss_growth(fn, calls=1, interval=0.002):
    """Peak growth (bytes) of this process's resident set, sampled every `interval` s (psutil),
    above the resident set before, while `fn()` runs `calls` times."""
    import psutil

    process = psutil.Process()
    base = process.memory_info().rss
    peak, done = [base], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        for _ in range(calls):
            fn()
    finally:
        done.set()
        thread.join()
    return max(peak[0], process.memory_info().rss) - base


def run_json(command, timeout=900):
    """Runs `command` (a list) in a fresh process, TensorFlow's C++ log quiet; returns its last
    stdout line, parsed as JSON. A failed child raises RuntimeError with the end of its stderr."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"Child process `{shlex.join(command[:2])} ...` failed (exit {done.returncode}): "
            f"{done.stderr[-2000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])
