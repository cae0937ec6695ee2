"""`FineTuneConfig`: the choices of a fine-tuning run and their defaults, in one place.

`fine_tune` and `train_transfer_model` train with one; `kerastransfer fit` takes its defaults
for its flags; the transfer search (`kerastransfer.tuning`) declares its search space's defaults
from it and prints a configuration as the `fit` command that trains it.

Example:

>>> config = FineTuneConfig(method="neon", epochs=3)
>>> config.effective_imported_rate, config.warmup_epochs, config.replace(epochs=5).epochs
(0.0, 200, 5)
>>> FineTuneConfig(method="fast")
Traceback (most recent call last):
...
ValueError: `method` must be one of neon, discriminative, ... Received: 'fast'
>>> FineTuneConfig(method="lora").effective_rank, FineTuneConfig(method="lora", rank=4).rank
(8, 4)
>>> FineTuneConfig(method="neon", rank=4)
Traceback (most recent call last):
...
ValueError: `rank` applies to methods 'lora' and 'dora' only. Received: rank=4 with method 'neon'
"""

import dataclasses
import math
import numbers

from kerastransfer.methods.bpa.dempster_shafer import GAMMA_FUNCTIONALS

# The whole-network methods (the transfer search's), then the parameter-efficient ones.
METHODS = ("neon", "discriminative", "layerwise_decay", "gradual", "bpa")
PEFT_METHODS = ("lora", "dora", "bitfit")
LORA_METHODS = ("lora", "dora")  # the methods `rank`, `lora_alpha`, ... apply to
DEFAULT_RANK = 8
# `learning_rate` when it is None, by method: the parameter-efficient methods train a few
# parameters, the adapters from a zero update, and take a 10x higher rate.
DEFAULT_LEARNING_RATE = {**{m: 1e-4 for m in METHODS}, **{m: 1e-3 for m in PEFT_METHODS}}
# The imported layers' rate as a multiple of `learning_rate`, by method (the adapters and biases
# of a parameter-efficient method train at `learning_rate`).
DEFAULT_IMPORTED_RATE = {
    "neon": 0.0,
    "discriminative": 0.1,
    "layerwise_decay": 0.1,
    "gradual": 1.0,
    "bpa": 1.0,
    "lora": 1.0,
    "dora": 1.0,
    "bitfit": 1.0,
}
APPLICATION_IMAGE_SIZE = 96  # input height and width of a keras.applications target


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    """What a fine-tuning run trains, and how: each field a `fine_tune` argument of the same name.

    Attributes:
        method: one of `METHODS` or `PEFT_METHODS` ("lora", "dora", "bitfit"; see
            `kerastransfer.fine_tuning`).
        learning_rate: Adam rate of the new layers (the top group), or "find": the learning-rate
            range test (`callbacks.LRFinder`) on the warmed-up model picks it. None (default):
            `DEFAULT_LEARNING_RATE[method]`, 1e-4, or 1e-3 for "lora", "dora" and "bitfit".
        imported_rate: rate of the imported layers as a multiple of `learning_rate`; 0 is the
            neon scheme. None: `DEFAULT_IMPORTED_RATE[method]`.
        frozen_levels: bottom levels kept frozen (`trainable=False`) through fine-tuning.
        groups: body groups of the discriminative method.
        every: epochs between unfreezings (gradual).
        bpa, gamma: add BPA gradient costs (always on for method "bpa") with this Gamma
            functional, "agreement" or "paper".
        train_normalization: train the body's normalization layers (default: inference mode
            with the source's statistics); with "bitfit" their gamma and beta join the biases,
            with "lora" and "dora" the normalization layers train fully beside the adapters.
        rank: r of the LoRA/DoRA updates (default `DEFAULT_RANK`); a layer whose kernel takes
            less (a 3x3 depthwise kernel: 9) gets its largest rank. Methods "lora", "dora" only.
        lora_alpha: the updates are scaled by lora_alpha / rank (None: 1, alpha = rank).
        lora_dropout: dropout rate on the input of the adapter path (training only).
        lora_targets: names or `fnmatch` patterns (on names or paths such as
            "mobilenetv2_1.00_96/block_1_*") of the backbone layers to adapt, or layer classes;
            None: every Dense, Conv2D, DepthwiseConv2D and SeparableConv2D of the backbone.
        head_width, dropout: units of a new ReLU layer before the classifier (0: none), and the
            dropout rate before the classifier (`surgery.replace_head`).
        warmup_epochs, warmup_learning_rate: the head's warm-up on frozen features (at most
            that many epochs; early stopping with patience 10).
        epochs, patience: fine-tuning epochs at most; early stopping patience on `val_loss`.
        image_size, channels: input size and channels of a keras.applications target (default
            `APPLICATION_IMAGE_SIZE` and the data's channels); a model source keeps its own.
        samples_per_class, validation_split, batch_size: how the data is loaded
            (`data.load_dataset`); `batch_size` is the global batch under a strategy.
        seed: seeds every random choice (data split, initialisation, dropout).
    """

    method: str = "discriminative"
    learning_rate: float | str | None = None
    imported_rate: float | None = None
    frozen_levels: int = 0
    groups: int = 3
    every: int = 1
    bpa: bool = False
    gamma: str = "agreement"
    train_normalization: bool = False
    rank: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float = 0.0
    lora_targets: tuple | None = None
    head_width: int = 0
    dropout: float = 0.2
    warmup_epochs: int = 200
    warmup_learning_rate: float = 1e-3
    epochs: int = 10
    patience: int = 2
    image_size: int | None = None
    channels: int | None = None
    samples_per_class: int | None = None
    validation_split: float = 0.1
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        if self.method not in (*METHODS, *PEFT_METHODS):
            raise ValueError(
                f"`method` must be one of {', '.join((*METHODS, *PEFT_METHODS))}. "
                f"Received: {self.method!r}"
            )
        self._check_peft()
        rate = self.imported_rate
        if rate is not None and not (isinstance(rate, numbers.Real) and 0 <= rate <= 1):
            raise ValueError(f"`imported_rate` must be in [0, 1]. Received: {rate!r}")
        if self.method == "neon" and rate not in (None, 0):
            raise ValueError(
                "`imported_rate` must be 0 for method 'neon' (imported layers train at rate "
                f"0); use method 'discriminative' for a small rate. Received: {rate}"
            )
        lr = self.learning_rate
        if lr not in (None, "find") and not (isinstance(lr, numbers.Real) and lr > 0):
            raise ValueError(
                f"`learning_rate` must be a positive number or 'find'. Received: {lr!r}"
            )
        if self.gamma not in GAMMA_FUNCTIONALS:
            raise ValueError(
                f"`gamma` must be one of {', '.join(GAMMA_FUNCTIONALS)}. Received: {self.gamma!r}"
            )

    def _check_peft(self):
        rank, alpha, dropout, targets = (
            self.rank,
            self.lora_alpha,
            self.lora_dropout,
            self.lora_targets,
        )
        if rank is not None and (
            isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1
        ):
            raise ValueError(f"`rank` must be an integer >= 1. Received: rank={rank!r}")
        if alpha is not None and not (
            isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and 0 < alpha < math.inf
        ):
            raise ValueError(f"`lora_alpha` must be None or > 0. Received: lora_alpha={alpha!r}")
        if isinstance(dropout, bool) or not (
            isinstance(dropout, numbers.Real) and 0 <= dropout < 1
        ):
            raise ValueError(
                f"`lora_dropout` must be a number in [0, 1). Received: lora_dropout={dropout!r}"
            )
        if targets is not None:
            single = isinstance(targets, (str, type)) or not hasattr(targets, "__iter__")
            targets = (targets,) if single else tuple(targets)
            if not targets or not all(isinstance(t, (str, type)) and t for t in targets):
                raise ValueError(
                    "`lora_targets` must be None or layer names, patterns or classes. "
                    f"Received: lora_targets={self.lora_targets!r}"
                )
            object.__setattr__(self, "lora_targets", targets)  # hashable, as the config is
        if self.method not in LORA_METHODS:
            for name, value, default in (
                ("rank", rank, None),
                ("lora_alpha", alpha, None),
                ("lora_dropout", dropout, 0.0),
                ("lora_targets", targets, None),
            ):
                if value != default:
                    raise ValueError(
                        f"`{name}` applies to methods 'lora' and 'dora' only. Received: "
                        f"{name}={value!r} with method '{self.method}'"
                    )
        if self.method in PEFT_METHODS:
            if self.imported_rate is not None:
                raise ValueError(
                    f"`imported_rate` does not apply to method '{self.method}' (its adapters or "
                    "biases train at `learning_rate`, like the new head): leave it None. "
                    f"Received: {self.imported_rate!r}"
                )
            if self.bpa:
                raise ValueError(
                    f"`bpa` cannot be combined with method '{self.method}': BPA scales the "
                    "gradients of the first convolution's filters, which it leaves frozen. "
                    "Received: bpa=True"
                )

    @property
    def effective_rank(self):
        """`rank`, or `DEFAULT_RANK` when it is None, for "lora" and "dora"; else None."""
        if self.method not in LORA_METHODS:
            return None
        return DEFAULT_RANK if self.rank is None else int(self.rank)

    @property
    def effective_learning_rate(self):
        """`learning_rate`, or the method's default (`DEFAULT_LEARNING_RATE`) when it is None or
        "find" (the rate used until the range test has run)."""
        if self.learning_rate in (None, "find"):
            return DEFAULT_LEARNING_RATE[self.method]
        return self.learning_rate

    @property
    def effective_imported_rate(self):
        """`imported_rate`, or the method's default (`DEFAULT_IMPORTED_RATE`) when it is None."""
        rate = (
            DEFAULT_IMPORTED_RATE[self.method] if self.imported_rate is None else self.imported_rate
        )
        return float(rate)

    @property
    def effective_method(self):
        """The method trained: discriminative rates or layer-wise decay from an imported rate of
        0 are the neon scheme."""
        layered = self.method in ("discriminative", "layerwise_decay")
        return "neon" if layered and self.effective_imported_rate == 0 else self.method

    def replace(self, **choices):
        """A copy with `choices` (field names) changed; an unknown name is a `TypeError`."""
        names = [field.name for field in dataclasses.fields(self)]
        unknown = [name for name in choices if name not in names]
        if unknown:
            raise TypeError(
                f"Unexpected fine-tuning argument '{unknown[0]}': the choices are the fields of "
                f"FineTuneConfig ({', '.join(names)})."
            )
        return dataclasses.replace(self, **choices) if choices else self
