"""Distributed backpropagation by basic probability assignment (BPA).

A. Shahriari, "Distributed Deep Transfer Learning by Basic Probability Assignment" (2017): each
filter k of a split convolution is a single-filter network; the Dempster-Shafer combination of its
recall and precision on the target data gives a cost Gamma_k that scales the gradients of the
parameters of filter k during fine-tuning.

- `dempster_shafer.py`: `bpa`, `gamma_costs`, `normalize_gamma` (the math, on confusion matrices).
- `split_layers.py`: resolving split layers (paths into nested models: `"backbone/conv"`) and
  their node in the flat view of the model (`kerastransfer.models.graph.flat_view`, nested models
  inlined), which probes and the parameter walk run on.
- `channel_slices.py`: the parameter slices that belong to each filter (`channel_slices`,
  `filter_parameters`), and the variables left unscaled where channels are mixed.
- `sampling.py`: `stratified_sample`, the class-balanced sample Gamma can run on.
- `base_probe.py`, `tile_pass.py`, `separable_pass.py`: the d masked forward passes, batched
  (`FilterProbe` and its two strategies); `probing.py`: `filter_probe` picks the strategy.
- `filter_costs.py`: `compute_gamma`, `filter_confusions`, `labelled_set`.
- `gradient_scales.py`: `GradientScales`, the multipliers of each filter's gradients.
- `bpa_model.py`: `BPAModel`, the model whose `train_step` scales each filter's gradients.
- `gamma_refresh.py`: `GammaRefresh`, the callback that recomputes Gamma during `fit`.
- `multiworker.py`: `MultiWorkerTrainer`, BPA under `MultiWorkerMirroredStrategy`.
"""

from kerastransfer.methods.bpa.base_probe import FilterProbe
from kerastransfer.methods.bpa.bpa_model import BPAModel
from kerastransfer.methods.bpa.dempster_shafer import bpa, gamma_costs, normalize_gamma
from kerastransfer.methods.bpa.filter_costs import compute_gamma, filter_confusions
from kerastransfer.methods.bpa.gamma_refresh import GammaRefresh
from kerastransfer.methods.bpa.multiworker import MultiWorkerTrainer
from kerastransfer.methods.bpa.probing import filter_probe
from kerastransfer.methods.bpa.sampling import stratified_sample

__all__ = [
    "BPAModel",
    "FilterProbe",
    "GammaRefresh",
    "MultiWorkerTrainer",
    "bpa",
    "compute_gamma",
    "filter_confusions",
    "filter_probe",
    "gamma_costs",
    "normalize_gamma",
    "stratified_sample",
]
