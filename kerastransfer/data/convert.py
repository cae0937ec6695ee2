"""Conversion of image batches to a model's input: channels (gray <-> RGB), then size."""

import numbers

import tensorflow as tf

_RESIZE_MODES = ("resize", "pad")


def check_image_shape(image_shape, name="image_shape"):
    """`image_shape` as a tuple `(height, width, channels)` of positive ints, channels 1 or 3.

    >>> check_image_shape([28, 28, 1])
    (28, 28, 1)
    """
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) != 3
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in shape)
        or not all(d >= 1 for d in shape)
    ):
        raise ValueError(
            f"`{name}` must be (height, width, channels), three positive integers, e.g. "
            f"(28, 28, 1) or (224, 224, 3). Received: {image_shape!r}"
        )
    if shape[2] not in (1, 3):
        raise ValueError(
            f"`{name}` must have 1 (gray) or 3 (RGB) channels: images are converted between "
            f"those two only. Received: {image_shape!r}"
        )
    return tuple(int(d) for d in shape)


def check_resize(resize):
    if resize not in _RESIZE_MODES:
        raise ValueError(
            "`resize` must be 'resize' (bilinear) or 'pad' (centre pad or crop). "
            f"Received: {resize!r}"
        )
    return resize


def to_image_shape(images, image_shape, resize="resize"):
    """A batch of images (any dtype, NHWC) as float32 in [0, 255] of shape `image_shape`:
    channels converted first, then resized (bilinear) or centre padded/cropped (`resize="pad"`)."""
    height, width, channels = check_image_shape(image_shape)
    check_resize(resize)
    x = convert_channels(tf.cast(images, tf.float32), channels)
    if x.shape[1] != height or x.shape[2] != width:
        if resize == "pad":
            x = tf.image.resize_with_crop_or_pad(x, height, width)
        else:
            x = tf.image.resize(x, (height, width))
    return x


def convert_channels(images, channels):
    """Gray -> RGB repeats the channel three times; RGB -> gray uses the ITU-R 601 luma weights
    (`tf.image.rgb_to_grayscale`), as the BPA paper does for MNIST <-> CIFAR."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(images)
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(images)
    raise ValueError(
        "`channels` must be 1 or 3 and the images must have 1 or 3 channels: only gray <-> RGB "
        f"is converted. Received: images with {have} channels, channels={channels}"
    )
