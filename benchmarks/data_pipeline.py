"""Data-pipeline benchmark: ratios and memory of `load_dataset` measured in one run.

For generated JPEG folders (10 classes of 32x32 RGB images, cached under --root), each size gets:

- `load_dataset(folder, image_shape=(S, S, 3), batch_size=B)` + one epoch of `data.train`;
- `keras.utils.image_dataset_from_directory` streaming the same folder at the same size and batch;
- the peak RSS of `kerastransfer fit MobileNetV2 FOLDER --epochs 1 --warmup-epochs 1` over its
  first --fit-seconds.

Beside them, once: the images per second a MobileNetV2 SxS training step consumes on this CPU.
Every measurement runs in its own child process, so each peak RSS is that measurement's alone.
Prints Markdown (with the command line above it), as the README shows it. Not a timed test: the
goals are ratios, judged on the machine that runs it.

    python benchmarks/data_pipeline.py [--sizes 2000,10000,50000] [--image-size 96]
        [--batch-size 32] [--root DIR] [--fit-seconds 300]   # --fit-seconds 0 skips the fit
"""

import argparse
import json
import os
import pathlib
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

CLASSES = 10
MARKER = "COMPLETE"  # written last: a folder without it is half-written and is regenerated
REPO = pathlib.Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "weights"
MOBILENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


# ---- data ------------------------------------------------------------------------------------


def make_folder(root, n):
    """`root/jpeg32-N/class_k/*.jpg`: seeded noise over a class-dependent stripe pattern (every
    file distinct). Reused when its marker says it is complete. Returns (folder, seconds spent)."""
    import numpy as np
    from PIL import Image

    folder = pathlib.Path(root) / f"jpeg32-{n}"
    if (folder / MARKER).is_file() and (folder / MARKER).read_text().strip() == str(n):
        return folder, 0.0
    start = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(n)
    yy, xx = np.mgrid[0:32, 0:32]
    patterns = []
    for c in range(CLASSES):
        (folder / f"class_{c}").mkdir(parents=True)
        angle, freq = np.pi * c / CLASSES, 0.25 + 0.05 * c
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * freq)
        tint = np.array([1 + (c % 3 == 0), 1 + (c % 3 == 1), 1 + (c % 3 == 2)]) / 2
        patterns.append(128 + 60 * stripes[..., None] * tint)
    for i in range(n):
        c = i % CLASSES
        pixels = patterns[c] + rng.normal(0, 30, (32, 32, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        image.save(folder / f"class_{c}" / f"{i:06d}.jpg", quality=90)
    (folder / MARKER).write_text(str(n))
    return folder, time.perf_counter() - start


# ---- the measurements (each runs in a child process: `--child NAME`) ---------------------------


def _epoch(dataset, args):
    """Images in one epoch and its seconds; checks the batches are (float32 SxSx3, labels) and
    that the epoch ends (no more images than the folder holds)."""
    files = sum(len(names) for _, _, names in os.walk(args.folder))
    start, n, size = time.perf_counter(), 0, args.image_size
    for x, _ in dataset:
        assert x.dtype.name == "float32" and tuple(x.shape[1:]) == (size, size, 3), x
        n += int(x.shape[0])
        assert n <= files, f"the epoch goes on past the folder's {files} files"
    return n, time.perf_counter() - start


def child_baseline(args):
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import kerastransfer.data  # noqa: F401

    return {"images": 0, "index_s": 0.0, "epoch_s": 1.0}


def child_load_dataset(args):
    from kerastransfer.data import load_dataset

    start = time.perf_counter()
    data = load_dataset(
        args.folder,
        image_shape=(args.image_size, args.image_size, 3),
        batch_size=args.batch_size,
        validation_split=0.1,
    )
    index_s = time.perf_counter() - start
    images, epoch_s = _epoch(data.train, args)
    return {"images": images, "index_s": index_s, "epoch_s": epoch_s}


def child_idfd(args):
    import keras
    import tensorflow as tf

    start = time.perf_counter()
    dataset = keras.utils.image_dataset_from_directory(
        args.folder,
        image_size=(args.image_size, args.image_size),
        batch_size=args.batch_size,
        shuffle=True,
        seed=0,
        verbose=False,
    ).prefetch(tf.data.AUTOTUNE)
    index_s = time.perf_counter() - start
    images, epoch_s = _epoch(dataset, args)
    return {"images": images, "index_s": index_s, "epoch_s": epoch_s}


def child_train_step(args, warmup=3, steps=20):
    """Images/s of MobileNetV2 training steps on one fixed in-memory batch: every layer training
    ("plain"), and with BatchNormalization frozen in inference mode, as `kerastransfer fit`
    fine-tunes by default (`train_normalization=False`: faster). The goal uses the faster."""
    import keras
    import numpy as np

    size, batch = args.image_size, args.batch_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, CLASSES, batch)
    result = {}
    for variant in ("plain", "frozen_bn"):
        model = keras.applications.MobileNetV2(
            input_shape=(size, size, 3), weights=None, classes=CLASSES
        )
        for layer in model.layers:
            if variant == "frozen_bn" and isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        for _ in range(warmup):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        result[variant] = steps * batch / (time.perf_counter() - start)
    fastest = max(result.values())
    return {**result, "images": steps * batch, "index_s": 0.0, "epoch_s": steps * batch / fastest}


CHILDREN = {
    "baseline": child_baseline,
    "load_dataset": child_load_dataset,
    "idfd": child_idfd,
    "train_step": child_train_step,
}


def run_child(name, args, folder=None):
    """Runs one measurement in a fresh interpreter; its last stdout line is the result (JSON)."""
    command = [sys.executable, __file__, "--child", name, "--folder", str(folder or "")]
    command += ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no stderr"])[-1][:200]
        return {"error": f"exit {done.returncode}: {last}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["per_s"] = result["images"] / (result["index_s"] + result["epoch_s"])
    return result


def run_fit(folder, args):
    """Peak RSS (process tree, sampled every 0.2 s) of `kerastransfer fit MobileNetV2 FOLDER
    --epochs 1` over its first --fit-seconds, with offline ImageNet weights in a temporary
    KERAS_HOME (the symlinks of tests/conftest.py's `imagenet_weights`)."""
    import psutil

    with tempfile.TemporaryDirectory(prefix="kerastransfer-bench-") as home:
        models = pathlib.Path(home) / "models"
        models.mkdir()
        for size in (96, 128, 160, 192, 224):
            name = MOBILENET_FILE.replace("_224_", f"_{size}_")
            os.symlink(WEIGHTS / MOBILENET_FILE, models / name)
        log = pathlib.Path(home) / "fit.log"
        command = [sys.executable, "-m", "kerastransfer", "fit", "MobileNetV2", str(folder)]
        command += ["--epochs", "1", "--image-size", str(args.image_size)]
        command += ["--batch-size", str(args.batch_size)]
        command += ["--warmup-epochs", str(args.fit_warmup_epochs)]  # reach fine-tuning soon
        start = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**ENV, "KERAS_HOME": home}
            )
            peak, parent = 0, psutil.Process(proc.pid)

            def sample():
                nonlocal peak
                while proc.poll() is None:
                    try:
                        tree = [parent, *parent.children(recursive=True)]
                        peak = max(peak, sum(p.memory_info().rss for p in tree))
                    except psutil.Error:
                        pass
                    time.sleep(0.2)

            monitor = threading.Thread(target=sample, daemon=True)
            monitor.start()
            try:
                proc.wait(timeout=args.fit_seconds)
                stopped = False
            except subprocess.TimeoutExpired:
                stopped = True
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            monitor.join()
        text = re.sub(r"\x1b\[[0-9;]*m|━+", " ", log.read_text(errors="replace"))
        text = text.replace("\r", "\n")
        last = next((ln.strip() for ln in reversed(text.split("\n")) if ln.strip()), "(none yet)")
    return {
        "peak_mb": peak / 2**20,
        "seconds": time.perf_counter() - start,
        "stopped": stopped,
        "returncode": proc.returncode,
        "last_line": " ".join(last.split())[:100],
    }


# ---- the report ------------------------------------------------------------------------------


def verdict(ratio, goal, at_most=False):
    met = ratio <= goal if at_most else ratio >= goal
    return f"{ratio:.2f}x ({'≤' if at_most else '≥'} {goal}: {'met' if met else 'NOT met'})"


def row(name, r):
    if "error" in r:
        return f"| {name} | error: {r['error']} | | | | |"
    return (
        f"| {name} | {r['images']:,} | {r['index_s']:.2f} | {r['epoch_s']:.2f} | "
        f"{r['per_s']:,.0f} | {r['peak_mb']:,.0f} |"
    )


def _sizes(text):
    """argparse type of `--sizes` (this parent process does not import TensorFlow)."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}"
        )
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=_sizes, default=(2000, 10000, 50000), help="images per folder"
    )
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--fit-warmup-epochs",
        type=int,
        default=1,
        help="the fit's head warm-up epochs: few, so every size reaches fine-tuning in the cap",
    )
    default_root = os.path.join(tempfile.gettempdir(), "kerastransfer-bench-data")
    parser.add_argument("--root", default=default_root, help="cache of the generated folders")
    parser.add_argument("--fit-seconds", type=float, default=300, help="0 skips the fit")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:  # one measurement; its own peak RSS (ru_maxrss: KB on Linux)
        result = CHILDREN[args.child](args)
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    sizes = list(args.sizes)
    print("```\n" + shlex.join(["python", *sys.argv]) + "\n```\n")
    for n in sizes:
        _, seconds = make_folder(args.root, n)
        print(f"- folder of {n:,} JPEGs: {'cached' if not seconds else f'made in {seconds:.0f} s'}")
    fit = args.fit_seconds > 0 and (WEIGHTS / MOBILENET_FILE).exists()
    if args.fit_seconds > 0 and not fit:
        print(f"- fit peak RSS skipped: no ImageNet weights at {WEIGHTS / MOBILENET_FILE}")

    base = run_child("baseline", args)
    if "error" not in base:
        print(f"- Python + TensorFlow + Keras imports alone: peak RSS {base['peak_mb']:,.0f} MB")
    step = run_child("train_step", args)
    s, b = args.image_size, args.batch_size
    if "error" in step:
        sys.exit(f"training step failed: {step['error']}")
    print(
        f"- training step (MobileNetV2 {s}x{s}, weights=None, batch {b}, Adam, train_on_batch on "
        f"one in-memory batch, 20 steps after 3 warm-up): {step['plain']:,.0f} images/s with "
        f"every layer training, {step['frozen_bn']:,.0f} images/s with BatchNormalization frozen "
        f"(as `kerastransfer fit` trains); **{step['per_s']:,.0f} images/s** (the faster) is the "
        f"consumption in the goal. Peak RSS {step['peak_mb']:,.0f} MB"
    )
    print(
        "- images/s = images of one epoch / (index s + epoch s); `load_dataset` serves its train "
        "split (72% of the folder: 20% test, then 10% validation), `image_dataset_from_directory` "
        "all of it. Peak RSS of each row is its own child process.\n"
    )
    first_fit, summary = None, []
    for n in sizes:
        folder = pathlib.Path(args.root) / f"jpeg32-{n}"
        ours, idfd = run_child("load_dataset", args, folder), run_child("idfd", args, folder)
        print(f"### {n:,} images ({s}x{s}, batch {b})\n")
        print("| measurement | images | index s | epoch s | images/s | peak RSS (MB) | ratio |")
        print("|---|---:|---:|---:|---:|---:|---|")
        ratios = ""
        if "error" not in ours and "error" not in idfd:
            vs_idfd, vs_step = ours["per_s"] / idfd["per_s"], ours["per_s"] / step["per_s"]
            ratios = f"vs idfd {verdict(vs_idfd, 1)}; vs training step {verdict(vs_step, 2)}"
            summary.append((n, vs_idfd, vs_step))
        print(row("`load_dataset` + 1 epoch of `.train`", ours), ratios, "|")
        print(row("`image_dataset_from_directory` + 1 epoch", idfd), "|")
        if fit:
            f = run_fit(folder, args)
            first_fit = first_fit or f["peak_mb"]
            how = (
                f"stopped at the cap; last output: `{f['last_line']}`"
                if f["stopped"]
                else f"ended in {f['seconds']:.0f} s, exit {f['returncode']}"
                + ("" if f["returncode"] == 0 else f": `{f['last_line']}`")
            )
            print(
                f"| `kerastransfer fit MobileNetV2` peak RSS over the first {args.fit_seconds:g} s"
                f" ({how}) | | | | | {f['peak_mb']:,.0f} | vs {sizes[0]:,} images "
                f"{verdict(f['peak_mb'] / first_fit, 1.1, at_most=True)} |"
            )
        print()
    print("### Goals\n")
    for n, vs_idfd, vs_step in summary:
        print(f"- {n:,}: load_dataset vs idfd {verdict(vs_idfd, 1)}, vs step {verdict(vs_step, 2)}")
    if fit and len(sizes) > 1:
        growth = verdict(f["peak_mb"] / first_fit, 1.1, at_most=True)
        print(f"- fit peak RSS, {sizes[0]:,} -> {sizes[-1]:,} images: {growth}")


if __name__ == "__main__":
    main()
