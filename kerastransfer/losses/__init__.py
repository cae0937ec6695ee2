"""Losses for transfer learning."""

from kerastransfer.losses.class_confusion import minimum_class_confusion  # noqa: E402,F401
from kerastransfer.losses.mmd import MultiKernelMMD  # noqa: E402,F401
