"""What training-time augmentation gains on the embedded sets, measured in one run.

For each dataset, `fine_tune` (the `kerastransfer fit` defaults: ImageNet MobileNetV2 at 96x96,
discriminative rates, at most 10 epochs with early stopping) runs with `augment=None` and with
`augment="auto"` (the preset for the kind of data: "digits" without flips for MNIST/USPS,
"photos" for Fashion-MNIST), over several seeds; the table gives test accuracy mean +- sd and
the difference.

    python benchmarks/augmentation.py [--datasets embedded:fashion_mnist,embedded:mnist]
        [--samples-per-class 50] [--seeds 3] [--epochs 10]

Needs the ImageNet MobileNetV2 weights in `$KERAS_HOME/models/` (see the README's GPU and
weights notes; with ../shared beside the checkout they are linked there for this run).
"""

import argparse
import os
import pathlib
import shlex
import sys
import tempfile

import numpy as np

SHARED_WEIGHTS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "weights"
MOBILENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def link_shared_weights():
    """Point a private KERAS_HOME at ../shared/weights (under every input-size name) when the
    caller's KERAS_HOME has no MobileNetV2 weights; must run before Keras is imported."""
    home = pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras"))
    if (home / "models" / MOBILENET_FILE.replace("_224_", "_96_")).exists():
        return
    if not (SHARED_WEIGHTS / MOBILENET_FILE).exists():
        sys.exit(f"No MobileNetV2 weights in {home / 'models'} nor {SHARED_WEIGHTS}.")
    home = pathlib.Path(tempfile.mkdtemp(prefix="kerastransfer-keras-home-"))
    (home / "models").mkdir()
    for size in (96, 128, 160, 192, 224):
        os.symlink(
            SHARED_WEIGHTS / MOBILENET_FILE,
            home / "models" / MOBILENET_FILE.replace("_224_", f"_{size}_"),
        )  # noqa: E501
    os.environ["KERAS_HOME"] = str(home)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="embedded:fashion_mnist,embedded:mnist")
    parser.add_argument("--samples-per-class", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    link_shared_weights()
    from kerastransfer import fine_tune
    from kerastransfer.data.augmentation import AUGMENTATION_PRESETS, augmentation_preset

    print("python benchmarks/augmentation.py " + shlex.join(argv or sys.argv[1:]))
    print()
    print('| dataset | preset | no augmentation | augment="auto" | difference |')
    print("| --- | --- | --- | --- | --- |")
    for name in args.datasets.split(","):
        accuracy = {}
        for augment in (None, "auto"):
            accuracy[augment] = np.array(
                [
                    fine_tune(
                        "MobileNetV2",
                        name,
                        samples_per_class=args.samples_per_class,
                        epochs=args.epochs,
                        augment=augment,
                        seed=seed,
                        verbose=0,
                    ).report.test_accuracy
                    * 100
                    for seed in range(args.seeds)
                ]
            )
            print(f"  {name} augment={augment}: {np.round(accuracy[augment], 2).tolist()}")
        preset = augmentation_preset(name)
        diff = accuracy["auto"] - accuracy[None]  # paired by seed
        print(
            f"| {name} | {preset} ({', '.join(AUGMENTATION_PRESETS[preset])}) | "
            f"{accuracy[None].mean():.2f} +- {accuracy[None].std(ddof=1):.2f} | "
            f"{accuracy['auto'].mean():.2f} +- {accuracy['auto'].std(ddof=1):.2f} | "
            f"{diff.mean():+.2f} +- {diff.std(ddof=1):.2f} |"
        )


if __name__ == "__main__":
    main()
