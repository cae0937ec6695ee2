"""Losses for transfer learning."""

from kerastransfer.losses.mmd import MultiKernelMMD  # noqa: E402,F401
