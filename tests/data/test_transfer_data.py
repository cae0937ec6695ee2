"""`TransferData` and `to_image_shape` check their arguments when built, not when iterated."""

import numpy as np
import pytest

from kerastransfer.data import DatasetInfo, TransferData, load_dataset, to_image_shape


def splits(n=6):
    x = np.zeros((n, 4, 4, 1), np.uint8)
    return {"train": (x, np.arange(n) % 2), "test": (x, np.arange(n) % 2)}


def test_transfer_data_checks_shape_batch_size_and_empty_splits():
    info = DatasetInfo("toy", 2, ("a", "b"), (4, 4, 1))
    with pytest.raises(ValueError, match="`image_shape` must be \\(height, width, channels\\)"):
        TransferData(info, splits(), image_shape=(4, 4))
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        TransferData(info, splits(), image_shape=(4, 4, 1), batch_size=0)
    with pytest.raises(ValueError, match="`resize` must be 'resize'"):
        TransferData(info, splits(), image_shape=(4, 4, 1), resize="crop")
    empty = splits()
    empty["test"] = (np.zeros((0, 4, 4, 1), np.uint8), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"Splits \['test'\] of 'toy' are empty"):
        TransferData(info, empty, image_shape=(4, 4, 1))


def test_explicit_batch_size_zero_is_refused_not_replaced():
    d = load_dataset("embedded:usps", samples_per_class=2, batch_size=8)
    assert next(iter(d.dataset("test", batch_size=3)))[0].shape[0] == 3
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer. Received: 0"):
        d.dataset("test", batch_size=0)


def test_to_image_shape_checks_its_shape():
    with pytest.raises(ValueError, match="`image_shape` must be \\(height, width, channels\\)"):
        to_image_shape(np.zeros((1, 4, 4, 1)), (4, 4))
    with pytest.raises(ValueError, match="1 \\(gray\\) or 3 \\(RGB\\) channels"):
        to_image_shape(np.zeros((1, 4, 4, 1)), (4, 4, 2))
