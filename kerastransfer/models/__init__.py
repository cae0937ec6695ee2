"""Networks the recipes and tests use; the image networks take raw pixels in [0, 255] and scale
them themselves.

- `small_cnn` (`cnn.py`): the paper-sized primary network (conv1 with 20 filters).
- `mobilenet_v2_classifier` (`mobilenet_v2.py`): ImageNet MobileNetV2 with a new softmax head.
- `digits_lenet` (`digits_network.py`): the LeNet of Transfer-Learning-Library's digits
  benchmark (28x28 gray, a bottleneck for domain adaptation).
- `lenet5` (`lenet.py`): LeNet-5 variant with exactly the free parameters of Gutstein et al.'s
  Table 1, and its layers (`Subsampling2D`, `PartialConv2D`, `CodeSoftmax`).
- `lstm_stack` (`recurrent.py`): the SpotTune report's 3-LSTM sequence classifier.

`graph.py` walks the functional graph of any model (producers and consumers of a tensor, nodes in
topological order, nested models inlined, layers called again on new tensors): the methods that
rebuild or probe a network (BPA, SpotTune) share it.
"""

from kerastransfer.models.cnn import small_cnn
from kerastransfer.models.digits_network import digits_lenet
from kerastransfer.models.lenet import lenet5
from kerastransfer.models.mobilenet_v2 import mobilenet_v2_classifier
from kerastransfer.models.recurrent import lstm_stack

__all__ = ["digits_lenet", "lenet5", "lstm_stack", "mobilenet_v2_classifier", "small_cnn"]
