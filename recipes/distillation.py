"""Knowledge distillation: a small student learns from a large teacher's soft targets.

Reproduces the distillation part of seed 003 (UPC/DCU "Transfer learning" lecture, after
Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015): train a large
teacher on the labels; then train a much smaller student twice from the same initial weights,
once on the labels alone ("from scratch") and once on the teacher's class probabilities softened
at temperature T combined with the labels ("distilled"):

    loss = a * CE(labels, student) + (1 - a) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

The lecture gives no numbers for distillation; Hinton et al. report on full MNIST (60k images) a
1200-1200 MLP teacher with 67 test errors, an 800-800 student with 146 errors from scratch and 74
errors when distilled at T = 20. This recipe runs the same comparison at laptop scale with CNNs on
the embedded MNIST sample (4,500 training images).

Built on `keras.distillation.Distiller` + `LogitsDistillation` through
`kerastransfer.distillation.build_distiller`; our models output probabilities, so the distiller
sees them through `logits_model` (a weight-sharing logits view) and trains the student itself.

Run (about 2-3 minutes on 2 CPU cores):

    python recipes/distillation.py

Larger: `python recipes/distillation.py --dataset mnist --epochs 20` (tensorflow-datasets name;
needs a prepared copy offline, see `--data-dir`). `--export` writes the distilled student as a
SavedModel to `saved_models/distillation_student`.
"""

import argparse
import os
import time

import keras
import numpy as np

from kerastransfer.data import load_dataset
from kerastransfer.methods.distillation import build_distiller
from kerastransfer.export import export_serving
from kerastransfer.models import small_cnn

# Hinton et al. 2015, section 3 (MNIST, 60k training images): test errors out of 10,000.
HINTON_MNIST = {"teacher": "67 errors (99.33%)", "student from scratch": "146 errors (98.54%)",
                "distilled student": "74 errors (99.26%)"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="embedded:mnist",
                        help="embedded:NAME, .npz path, image folder or tensorflow-datasets name")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data folder")
    parser.add_argument("--samples-per-class", type=int, default=None,
                        help="training images per class (default: all)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="resize images to this square size (default: native)")
    parser.add_argument("--teacher-filters", type=int, nargs=2, default=(32, 64))
    parser.add_argument("--teacher-dense", type=int, default=512)
    parser.add_argument("--student-filters", type=int, nargs=2, default=(4, 8))
    parser.add_argument("--student-dense", type=int, default=32)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12, help="student epochs (both students)")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--student-loss-weight", type=float, default=0.1,
                        help="weight a of the hard-label loss; 1 - a goes to the soft targets")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", action="store_true",
                        help="export the distilled student to saved_models/distillation_student")
    parser.add_argument("--export-dir", default="saved_models")
    parser.add_argument("--verbose", type=int, default=0)
    return parser.parse_args(argv)


def evaluate(model, dataset):
    """Test accuracy of a probability model."""
    model.compile(metrics=["accuracy"], loss="sparse_categorical_crossentropy")
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def main(argv=None):
    """Train teacher, student from scratch and distilled student; print and return the table.

    Returns:
        A dict with `rows` (one dict per model: method, params, train_s, test_accuracy),
        `history` (the distiller's loss curves), `models` and `export_path`.
    """
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    data = load_dataset(
        args.dataset, samples_per_class=args.samples_per_class, batch_size=args.batch_size,
        seed=args.seed, data_dir=args.data_dir,
    )
    if args.image_size:  # same images, converted on the fly to another size
        data = load_dataset(
            args.dataset, samples_per_class=args.samples_per_class, batch_size=args.batch_size,
            seed=args.seed, data_dir=args.data_dir,
            image_shape=(args.image_size, args.image_size, data.info.image_shape[-1]),
        )
    shape, classes = data.image_shape, data.info.num_classes
    print(f"{data}; images {shape}")
    rows = []

    # 1. The teacher: a wide CNN trained on the labels.
    teacher = small_cnn(shape, classes, filters=tuple(args.teacher_filters),
                        dense=args.teacher_dense, name="teacher")
    teacher.compile(keras.optimizers.Adam(args.learning_rate), "sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    start = time.perf_counter()
    teacher.fit(data.train, validation_data=data.validation, epochs=args.teacher_epochs,
                verbose=args.verbose, shuffle=False)  # data.train reshuffles every epoch
    rows.append(_row("teacher", teacher, start, data))

    # 2. The student architecture, initialised once: both students start from these weights.
    student = small_cnn(shape, classes, filters=tuple(args.student_filters),
                        dense=args.student_dense, dropout=0.0, name="student")
    initial = student.get_weights()

    scratch = keras.models.clone_model(student)
    scratch.set_weights(initial)
    scratch.compile(keras.optimizers.Adam(args.learning_rate), "sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    start = time.perf_counter()
    scratch.fit(data.train, validation_data=data.validation, epochs=args.epochs,
                verbose=args.verbose, shuffle=False)
    rows.append(_row("student from scratch", scratch, start, data))

    # 3. The same student, distilled: soft targets at T plus the hard labels.
    distiller = build_distiller(
        teacher, student, temperature=args.temperature,
        student_loss_weight=args.student_loss_weight,
        optimizer=keras.optimizers.Adam(args.learning_rate),
    )
    start = time.perf_counter()
    history = distiller.fit(data.train, validation_data=data.validation, epochs=args.epochs,
                            verbose=args.verbose, shuffle=False)
    rows.append(_row(f"distilled student (T={args.temperature:g}, a={args.student_loss_weight:g})",
                     student, start, data))

    print_table(rows, args)
    export_path = None
    if args.export:
        export_path = export_serving(
            student, os.path.join(args.export_dir, "distillation_student"),
            raw_shape=data.info.image_shape,
        )
        print(f"Exported the distilled student to {export_path}")
    return {"rows": rows, "history": history.history, "export_path": export_path,
            "models": {"teacher": teacher, "scratch": scratch, "student": student}}


def _row(method, model, start, data):
    train_s = time.perf_counter() - start
    return {"method": method, "params": int(model.count_params()), "train_s": round(train_s, 1),
            "test_accuracy": evaluate(model, data.test)}


def print_table(rows, args):
    mnist = "mnist" in args.dataset
    print()
    print(f"Knowledge distillation on {args.dataset} (test set)")
    header = f"| {'model':<40} | {'params':>9} | {'train s':>7} | {'test acc':>8} |"
    if mnist:
        header += f" {'Hinton et al. (full MNIST, MLPs)':<32} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for row, claim in zip(rows, HINTON_MNIST.values()):
        line = (f"| {row['method']:<40} | {row['params']:>9,} | {row['train_s']:>7.1f} | "
                f"{row['test_accuracy']:>8.2%} |")
        if mnist:
            line += f" {claim:<32} |"
        print(line)


if __name__ == "__main__":
    main()
