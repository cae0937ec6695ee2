"""Transfer-learning data: `load_dataset` and what it returns.

- `load_dataset` (`loading.py`): embedded samples, `.npz` files, image folders and
  tensorflow-datasets names, split (stratified validation, samples per class, class subsets).
- `TransferData`, `DatasetInfo` (`transfer_data.py`): the splits, indexes served as streaming
  `tf.data` pipelines.
- `records.py`: where a split's examples live (an array, image files, tensorflow-datasets
  records) and how a pipeline reads them; `sources.py` builds them from a source.
- `image_decoding.py`: image files checked and decoded in the graph at the model's size.
- `augmentation.py`: seeded training-time augmentation presets from Keras preprocessing layers.
- `dataset_cache.py`: `cache=`, decoded examples kept in memory or a folder.
- `set_epoch`, `shuffled_indices`, `shuffle_by_epoch` (`epoch_order.py`): pass e of a shuffled
  pipeline ordered (and augmented) by its seed and e alone, so a resumed run reads what an
  uninterrupted one reads.
- `read_errors.py`: a pipeline's failure to read an image, as an error naming the file.
- `to_image_shape`, `convert_channels` (`convert.py`): gray <-> RGB and resizing, in the graph.
"""

from kerastransfer.data.convert import convert_channels, to_image_shape
from kerastransfer.data.epoch_order import set_epoch, shuffle_by_epoch, shuffled_indices
from kerastransfer.data.loading import load_dataset
from kerastransfer.data.sources import EMBEDDED
from kerastransfer.data.transfer_data import DatasetInfo, TransferData

__all__ = [
    "EMBEDDED",
    "DatasetInfo",
    "TransferData",
    "convert_channels",
    "load_dataset",
    "set_epoch",
    "shuffle_by_epoch",
    "shuffled_indices",
    "to_image_shape",
]
