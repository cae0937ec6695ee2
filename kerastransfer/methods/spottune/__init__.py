"""SpotTune (Guo et al. 2019, "SpotTune: Transfer Learning through Adaptive Fine-tuning"):
per-input choice between frozen and fine-tuned copies of blocks, for residual conv nets and
stacked recurrent layers.

- `SpotTuneModel`: the model (policy + network); `SpotTuneModel.from_model(pretrained)`.
- `find_blocks`, `Block`: blocks of a functional model (automatic or `(first, last)` pairs).
- `SpotTuneBlock`, `spottune_network`: the two-copy block layer and the rebuilt network.
- `conv_policy`, `lstm_policy`: policy networks. `GumbelSoftmax`, `gumbel_softmax`.
- `spottune_optimizer`: the policy's own learning rate (a `MultiOptimizer` map).
- `PolicyUsage`, `policy_usage`: the decisions, logged during `fit` and for a dataset.
- `fold_blocks`: fold blocks whose policy always picks one copy into a plain block.
"""

from kerastransfer.methods.spottune.blocks import Block, find_blocks
from kerastransfer.methods.spottune.fold import fold_blocks
from kerastransfer.methods.spottune.gumbel import GumbelSoftmax, gumbel_softmax
from kerastransfer.methods.spottune.network import spottune_network
from kerastransfer.methods.spottune.optimizer import spottune_optimizer
from kerastransfer.methods.spottune.policy import conv_policy, lstm_policy
from kerastransfer.methods.spottune.spottune_block import SpotTuneBlock
from kerastransfer.methods.spottune.spottune_model import SpotTuneModel
from kerastransfer.methods.spottune.usage import PolicyUsage, policy_usage

__all__ = [
    "Block",
    "GumbelSoftmax",
    "PolicyUsage",
    "SpotTuneBlock",
    "SpotTuneModel",
    "conv_policy",
    "find_blocks",
    "fold_blocks",
    "gumbel_softmax",
    "lstm_policy",
    "policy_usage",
    "spottune_network",
    "spottune_optimizer",
]
