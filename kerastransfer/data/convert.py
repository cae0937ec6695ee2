"""Conversion of image batches to a model's input: channels (gray <-> RGB), then size."""

import tensorflow as tf


def to_image_shape(images, image_shape, resize="resize"):
    """A batch of images (any dtype, NHWC) as float32 in [0, 255] of shape `image_shape`:
    channels converted first, then resized (bilinear) or centre padded/cropped (`resize="pad"`)."""
    height, width, channels = image_shape
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
    raise ValueError(f"Cannot convert images with {have} channels to {channels} channels.")
