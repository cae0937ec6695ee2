"""Transfer-learning data: `load_dataset` and what it returns.

- `load_dataset` (`load_dataset.py`): embedded samples, `.npz` files, image folders and
  tensorflow-datasets names, split (stratified validation, samples per class, class subsets).
- `TransferData`, `DatasetInfo` (`transfer_data.py`): the splits, served as `tf.data` pipelines.
- `to_image_shape`, `convert_channels` (`convert.py`): gray <-> RGB and resizing, in the graph.
"""

from kerastransfer.data.convert import convert_channels, to_image_shape
from kerastransfer.data.load_dataset import load_dataset
from kerastransfer.data.sources import EMBEDDED
from kerastransfer.data.transfer_data import DatasetInfo, TransferData

__all__ = [
    "EMBEDDED",
    "DatasetInfo",
    "TransferData",
    "convert_channels",
    "load_dataset",
    "to_image_shape",
]
