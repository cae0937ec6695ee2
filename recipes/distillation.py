"""Knowledge distillation: a small student learns from a large teacher's soft targets.

Reproduces the comparison of Hinton, Vinyals and Dean, "Distilling the knowledge in a neural
network" (2015), as presented in K. McGuinness's "Transfer learning" lecture (UPC Barcelona deep
learning winter school, 2018): train a large teacher on the labels; then train a much smaller
student twice from the same initial weights, once on the labels alone ("from scratch") and once
on the teacher's class probabilities softened at temperature T combined with the labels
("distilled"):

    loss = a * CE(labels, student) + (1 - a) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

The lecture gives no numbers for distillation; Hinton et al. report on full MNIST (60k images) a
1200-1200 MLP teacher with 67 test errors, an 800-800 student with 146 errors from scratch and 74
errors when distilled at T = 20. This recipe runs the same comparison at laptop scale with CNNs on
the embedded MNIST sample (4,500 training images).

Built on `keras.distillation.Distiller` + `LogitsDistillation` through
`kerastransfer.methods.distillation.build_distiller`; our models output probabilities, so the
distiller sees them through `logits_model` (a weight-sharing logits view) and trains the student
itself.

Run (about 2-3 minutes on 2 CPU cores; one seed):

    python recipes/distillation.py

`--seeds N` repeats the whole comparison (teacher included) with seeds 0..N-1 and reports
mean +- sd (N times the run time); seeded and deterministic by default. `--dataset` takes `mnist`,
`usps`, `fashion_mnist` (embedded, or their files in `--data-root`) or anything `load_dataset`
takes (an `.npz` path, an image folder, a tensorflow-datasets name with `--data-dir`), e.g.
`python recipes/distillation.py --data-root ../shared/data --epochs 20`. `--backup-dir DIR` makes
every fit resumable and keeps finished runs, so a re-run after a kill skips them. `--export`
writes the distilled student of seed 0 as a SavedModel to `saved_models/distillation_student`.
"""

import argparse
import os
import time

import _common  # noqa: F401  (first: TensorFlow's start-up lines stay hidden; see _common)
import keras
import numpy as np
from _common import (
    RunCache,
    add_common_flags,
    atomic_save,
    fit,
    load,
    mean_sd,
    print_table,
    run_recipe,
    set_seeds,
)

from kerastransfer.export import export_serving
from kerastransfer.methods.distillation import build_distiller
from kerastransfer.models import small_cnn

# Hinton et al. 2015, section 3 (MNIST, 60k training images): test errors out of 10,000.
HINTON_MNIST = {
    "teacher": "67 errors (99.33%)",
    "scratch": "146 errors (98.54%)",
    "distilled": "74 errors (99.26%)",
}
METHODS = ("teacher", "scratch", "distilled")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        default="mnist",
        help="mnist, usps, fashion_mnist (embedded, or from --data-root), an .npz "
        "path, an image folder or a tensorflow-datasets name",
    )
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data folder")
    parser.add_argument(
        "--samples-per-class",
        type=int,
        default=None,
        help="training images per class (default: all)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize images to this square size (default: native)",
    )
    parser.add_argument("--teacher-filters", type=int, nargs=2, default=(32, 64))
    parser.add_argument("--teacher-dense", type=int, default=512)
    parser.add_argument("--student-filters", type=int, nargs=2, default=(4, 8))
    parser.add_argument("--student-dense", type=int, default=32)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument(
        "--student-loss-weight",
        type=float,
        default=0.1,
        help="weight a of the hard-label loss; 1 - a goes to the soft targets",
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    add_common_flags(parser, seeds=1, epochs=12)  # --epochs: student epochs (both students)
    return parser.parse_args(argv)


def load_data(args, seed):
    """The dataset, its validation split and shuffling drawn with `seed`; `--image-size` resizes
    the images on the fly (keeping their channels)."""
    kwargs = dict(
        samples_per_class=args.samples_per_class,
        batch_size=args.batch_size,
        seed=seed,
        data_dir=args.data_dir,
    )
    data = load(args.dataset, args, **kwargs)
    if args.image_size:
        channels = data.info.image_shape[-1]
        data = load(
            args.dataset, args, image_shape=(args.image_size, args.image_size, channels), **kwargs
        )
    return data


def evaluate(model, dataset):
    """Test accuracy of a probability model."""
    model.compile(metrics=["accuracy"], loss="sparse_categorical_crossentropy")
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def build_student(args, data):
    """The student architecture, initialised from the current seed: both students start from
    the same weights because both are built right after `set_seeds(seed)`."""
    return small_cnn(
        data.image_shape,
        data.info.num_classes,
        filters=tuple(args.student_filters),
        dense=args.student_dense,
        dropout=0.0,
        name="student",
    )


class SeedRuns:
    """The three runs of one seed (teacher, student from scratch, distilled student), each
    computed only when `--backup-dir` does not hold it yet. A run depends only on the seed (each
    starts with `set_seeds(seed)`), so a resumed run gives the same numbers."""

    def __init__(self, args, data, seed, cache):
        self.args, self.data, self.seed, self.cache = args, data, seed, cache
        self.models = {}
        digest = cache.path.stem if cache.path else "runs"
        self.prefix = os.path.join("distillation", digest)  # BackupAndRestore folders
        self.files = os.path.join(args.backup_dir or "", self.prefix)

    def _fit(self, model, name, epochs):
        start = time.perf_counter()
        fit(
            model,
            self.data,
            epochs=epochs,
            backup_dir=self.args.backup_dir,
            name=os.path.join(self.prefix, f"{name}-{self.seed}"),
            verbose=self.args.verbose,
        )
        return time.perf_counter() - start

    def _row(self, model, seconds, **extra):
        return {
            "params": int(model.count_params()),
            "train_s": seconds,
            "test_accuracy": evaluate(model, self.data.test),
            **extra,
        }

    def _set_seeds(self):
        set_seeds(self.seed, deterministic=not self.args.nondeterministic)

    def teacher(self):
        """The trained teacher: from this process, or from `--backup-dir`."""
        self.get("teacher")
        if "teacher" not in self.models:
            self.models["teacher"] = keras.models.load_model(self.file("teacher"))
        return self.models["teacher"]

    def file(self, method):
        return os.path.join(self.files, f"{method}-{self.seed}.keras")

    def get(self, method):
        return self.cache.get(f"{method}:{self.seed}", getattr(self, f"_train_{method}"))

    def _train_teacher(self):
        args = self.args
        self._set_seeds()
        teacher = small_cnn(
            self.data.image_shape,
            self.data.info.num_classes,
            filters=tuple(args.teacher_filters),
            dense=args.teacher_dense,
            name="teacher",
        )
        teacher.compile(
            keras.optimizers.Adam(args.learning_rate),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        seconds = self._fit(teacher, "teacher", args.teacher_epochs)
        if args.backup_dir:  # the distilled student of a resumed run needs it
            atomic_save(teacher, self.file("teacher"))
        self.models["teacher"] = teacher
        return self._row(teacher, seconds)

    def _train_scratch(self):
        args = self.args
        self._set_seeds()
        scratch = build_student(args, self.data)
        scratch.compile(
            keras.optimizers.Adam(args.learning_rate),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        seconds = self._fit(scratch, "scratch", args.epochs)
        self.models["scratch"] = scratch
        return self._row(scratch, seconds)

    def _train_distilled(self):
        args = self.args
        teacher = self.teacher()
        self._set_seeds()  # after the teacher: the same initial student as `_train_scratch`
        student = build_student(args, self.data)
        distiller = build_distiller(
            teacher,
            student,
            temperature=args.temperature,
            student_loss_weight=args.student_loss_weight,
            optimizer=keras.optimizers.Adam(args.learning_rate),
        )
        distiller(np.zeros((1, *self.data.image_shape), "float32"))  # built, for BackupAndRestore
        start = time.perf_counter()
        history = fit(
            distiller,
            self.data,
            epochs=args.epochs,
            backup_dir=args.backup_dir,
            name=os.path.join(self.prefix, f"distilled-{self.seed}"),
            verbose=args.verbose,
        )
        seconds = time.perf_counter() - start
        if args.backup_dir:  # to export it from a resumed run
            atomic_save(student, self.file("student"))
        self.models["student"] = student
        return self._row(student, seconds, history=history.history)

    def student(self):
        """The distilled student (for export): from this process, or from `--backup-dir`."""
        return self.models.get("student") or keras.models.load_model(self.file("student"))


def main(argv=None):
    """Train teacher, student from scratch and distilled student for every seed; print and
    return the table.

    Returns:
        A dict with `rows` (one dict per model: method, params, train_s, test_accuracy (mean),
        test_sd, runs), `history` (the distiller's loss curves, seed 0), `models` (seed 0's,
        those trained in this process) and `export_path`.
    """
    args = parse_args(argv)
    set_seeds(0, deterministic=not args.nondeterministic)
    cache = RunCache(args.backup_dir, "distillation", args)
    results = {method: [] for method in METHODS}
    for seed in range(args.seeds):
        data = load_data(args, seed)
        if seed == 0:
            print(f"{data}; images {data.image_shape}")
        runs = SeedRuns(args, data, seed, cache)
        for method in METHODS:
            results[method].append(runs.get(method))
        print(
            f"  seed {seed}: "
            + ", ".join(f"{m} {100 * results[m][-1]['test_accuracy']:.2f}%" for m in METHODS)
        )
        if seed == 0:
            first, first_data = runs, data

    labels = {
        "teacher": "teacher",
        "scratch": "student from scratch",
        "distilled": f"distilled student (T={args.temperature:g}, a={args.student_loss_weight:g})",
    }
    rows = []
    for method in METHODS:
        runs = results[method]
        accuracies = [r["test_accuracy"] for r in runs]
        rows.append(
            {
                "method": labels[method],
                "key": method,
                "params": runs[0]["params"],
                "train_s": float(np.mean([r["train_s"] for r in runs])),
                "test_accuracy": float(np.mean(accuracies)),
                "test_sd": float(np.std(accuracies)),
                "runs": accuracies,
            }
        )
    print_results(rows, args)
    export_path = None
    if args.export:
        export_path = export_serving(
            first.student(),
            os.path.join(args.saved_models, "distillation_student"),
            raw_shape=first_data.info.image_shape,
        )
        print(f"Exported the distilled student (seed 0) to {export_path}")
    return {
        "rows": rows,
        "history": results["distilled"][0]["history"],
        "export_path": export_path,
        "models": first.models,
    }


def print_results(rows, args):
    mnist = "mnist" in args.dataset
    table = [
        {
            "model": row["method"],
            "params": f"{row['params']:,}",
            "train s": f"{row['train_s']:.1f}",
            "test acc, %": mean_sd(row["runs"], 100, 2),
            "Hinton et al. (full MNIST, MLPs)": HINTON_MNIST[row["key"]],
        }
        for row in rows
    ]
    columns = ["model", "params", "train s", "test acc, %"]
    if mnist:
        columns.append("Hinton et al. (full MNIST, MLPs)")
    more = " (--seeds N for more)" if args.seeds == 1 else ""
    print_table(
        table,
        columns,
        title=f"Knowledge distillation on {args.dataset} (test set), mean +- sd over "
        f"{args.seeds} seed(s){more}",
    )


if __name__ == "__main__":
    run_recipe(main)
