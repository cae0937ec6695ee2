"""The checks of data against a model, made in Python before a graph runs on it."""

import numpy as np
import pytest
import tensorflow as tf

from kerastransfer import input_checks
from kerastransfer.models import small_cnn


def test_labels_are_class_ids_in_range_or_one_hot_rows():
    input_checks.check_labels(np.array([0, 2, 1]), 3)
    input_checks.check_labels(np.eye(3), 3)  # one-hot
    input_checks.check_labels(np.array([[0.0], [2.0]]), 3)  # whole floats, (n, 1)
    input_checks.check_labels(np.array([0, 1, 1]), 1)  # one sigmoid unit: not checked
    with pytest.raises(ValueError, match=r"^`y` must be class ids in 0..2.*\[-1, 3\]"):
        input_checks.check_labels(np.array([-1, 3, 0]), 3)
    with pytest.raises(ValueError, match=r"whole class ids.*\[0.5\]"):
        input_checks.check_labels(np.array([0.5, 1.0]), 3)
    with pytest.raises(ValueError, match=r"one-hot rows of shape \(batch, 3\).*\(2, 5\)"):
        input_checks.check_labels(np.zeros((2, 5)), 3)


def test_images_and_datasets_are_checked_against_the_model():
    model = small_cnn((12, 12, 1), 3, filters=(2, 3), dense=4)
    input_checks.check_images(model, (None, 12, 12, 1))
    with pytest.raises(ValueError, match=r"received one item of shape \(12, 12, 1\).*Batch it"):
        input_checks.check_images(model, (12, 12, 1))
    with pytest.raises(ValueError, match=r"must be finite.*samples \(first: \[1\]\)"):
        input_checks.check_finite(np.array([[0.0], [np.inf]]))
    data = tf.data.Dataset.from_tensor_slices((np.zeros((4, 12, 12, 1)), np.zeros((4, 5))))
    with pytest.raises(ValueError, match=r"labels of `d` must be class ids .*\(None, 5\)"):
        input_checks.check_dataset(model, data.batch(2), "`d`", num_classes=3)


def test_labels_of_batches_run_in_a_graph_are_re_raised_as_one_line():
    @tf.function
    def step(y):
        return input_checks.assert_labels_in_range(y, 3)

    step(tf.constant([0, 2]))
    with pytest.raises(ValueError) as e:
        with input_checks.readable_step_errors(3):
            step(tf.constant([0, 3]))
    assert str(e.value).startswith("The labels must be class ids in 0..2")
    assert "Remap the labels" in str(e.value) and "\n" not in str(e.value)
