"""Encoded images (JPEG, PNG, GIF, BMP) decoded inside a `tf.data` pipeline at a model's size.

`decode_to_shape(contents, image_shape, resize)` turns the bytes of one file into a float32 image
of `image_shape` in [0, 255], in the graph, and `check_readable(contents, names)` stops a
pipeline at a batch of files that holds one that cannot be an image:

- any colour model is converted, none rejected: gray, RGBA (alpha dropped), palette and 16-bit
  PNGs, CMYK JPEGs all come out RGB, then gray <-> RGB as `convert_channels` does for arrays;
- a JPEG far larger than the model's input is decoded at 1/2, 1/4 or 1/8 of its size by the
  decoder itself (DCT scaling, as PIL's draft mode does), never larger than twice the target, so
  a 24-megapixel photo does not cost 72 MB per image in flight;
- a file that is empty, not an image, or visibly truncated (a JPEG without its end marker, a PNG
  without its IEND chunk) stops the pipeline with an error naming the file and the fix, before
  any batch holding it reaches a model.

`read_image(path, image_shape, resize)` is the eager form, for one file (`kerastransfer predict`,
the scan that names an unreadable file).
"""

import re

import tensorflow as tf

from kerastransfer.data.convert import convert_channels

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SKIP_HINT = "Delete or replace it, or pass `skip_unreadable=True` to skip unreadable files."
_JPEG_RATIOS = (1, 2, 4, 8)


REASONS = (
    "",
    "the file is empty",
    "not a JPEG, PNG, GIF or BMP image",
    "truncated JPEG (no end-of-image marker)",
    "truncated PNG (no IEND chunk)",
)


def _holds(contents, marker):
    """Whether the bytes `marker` occur in the string `contents` (a search in the graph)."""
    data = tf.io.decode_raw(contents, tf.uint8)
    n = tf.maximum(tf.size(data) - len(marker) + 1, 0)
    found = tf.equal(data[:n], marker[0])
    for i, byte in enumerate(marker[1:], 1):
        found &= tf.equal(data[i : i + n], byte)
    return tf.reduce_any(found)


def unreadable_reasons(contents):
    """For a vector of file contents: 0 for each plausible image file, else the index of why it
    cannot be one in `REASONS` (in the graph, a batch at a time).

    A JPEG ends with its end-of-image marker and a PNG with its IEND chunk; the rare file with
    bytes after them (some cameras append data) is searched in full before it is called
    truncated, so the common case costs a few string slices per batch.
    """
    head = tf.strings.substr(contents, 0, 4)
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 2), b"\xff\xd8")
    is_png = tf.equal(head, b"\x89PNG")
    known = (
        is_jpeg | is_png | tf.equal(head, b"GIF8") | tf.equal(tf.strings.substr(head, 0, 2), b"BM")
    )
    size = tf.strings.length(contents)
    ends = tf.where(
        is_jpeg,
        tf.strings.substr(contents, tf.maximum(size - 2, 0), tf.fill(tf.shape(size), 2)),
        tf.strings.substr(contents, tf.maximum(size - 8, 0), tf.fill(tf.shape(size), 4)),
    )
    suspect = (is_jpeg & ~tf.equal(ends, b"\xff\xd9")) | (is_png & ~tf.equal(ends, b"IEND"))
    index = tf.where(tf.equal(size, 0), 1, tf.where(known, 0, 2))

    def search():
        def one(args):
            c, jpeg = args
            return tf.cond(jpeg, lambda: _holds(c, b"\xff\xd9"), lambda: _holds(c, b"IEND"))

        found = tf.map_fn(one, (contents, is_jpeg), fn_output_signature=tf.bool)
        truncated = suspect & (index == 0) & ~found
        return tf.where(truncated, tf.where(is_jpeg, 3, 4), index)

    return tf.cond(tf.reduce_any(suspect & (index == 0)), search, lambda: index)


def check_readable(contents, names):
    """`contents` (a vector) once every file in it is a plausible image; else the pipeline stops
    with an error naming the first file that is not, and why."""
    reasons = unreadable_reasons(contents)

    def fail():
        first = tf.argmax(reasons > 0)
        message = tf.strings.join(
            [
                "Cannot read image file ",
                names[first],
                ": ",
                tf.gather(REASONS, reasons[first]),
                ". ",
                SKIP_HINT,
            ]  # fmt: skip
        )
        return tf.debugging.Assert(False, [message])

    with tf.control_dependencies([tf.cond(tf.reduce_any(reasons > 0), fail, tf.no_op)]):
        return tf.identity(contents)


def unreadable_reason(contents):
    """An empty string for a plausible image file, else why it cannot be one."""
    return REASONS[int(unreadable_reasons(tf.reshape(contents, [1]))[0])]


def _decode_rgb(contents, height, width, channels=3):
    """uint8 image of `channels` (3, or 1 for a source known to be gray); JPEGs at the smallest
    DCT scale still at least (height, width)."""

    def jpeg():
        shape = tf.io.extract_jpeg_shape(contents)
        fits = [(shape[0] // r >= height) & (shape[1] // r >= width) for r in _JPEG_RATIOS]
        index = tf.reduce_sum(tf.cast(tf.stack(fits[1:]), tf.int32))  # ratios that still fit
        branches = [
            lambda r=r: tf.io.decode_jpeg(contents, channels=channels, ratio=r)
            for r in _JPEG_RATIOS
        ]
        return tf.switch_case(index, branches)

    def other():
        return tf.io.decode_image(
            contents, channels=channels, dtype=tf.uint8, expand_animations=False
        )

    image = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, channels])
    return image


def decode_to_shape(contents, image_shape, resize="resize", gray=False):
    """One file's bytes as a float32 image of `image_shape` in [0, 255] (graph-safe); the file
    is expected to have passed `check_readable`. `gray`: the source is known to be gray (a
    tensorflow-datasets feature of one channel), decoded as such, exactly."""
    height, width, channels = image_shape
    decoded = _decode_rgb(contents, height, width, 1 if gray and channels == 1 else 3)
    image = convert_channels(tf.cast(decoded, tf.float32), channels)
    if resize == "pad":
        return tf.image.resize_with_crop_or_pad(image, height, width)
    return tf.image.resize(image, (height, width))


def read_image(path, image_shape, resize="resize"):
    """Eagerly: the image at `path` as a float32 array of `image_shape`.

    Raises:
        ValueError: naming the file and the reason, if it is missing or cannot be decoded.
    """
    try:
        contents = tf.io.read_file(str(path))
        reason = unreadable_reason(contents)
        if reason:
            raise ValueError(f"Cannot read image file {path}: {reason}. {SKIP_HINT}")
        return decode_to_shape(contents, image_shape, resize).numpy()
    except tf.errors.NotFoundError:
        raise ValueError(
            f"Image file '{path}' does not exist (moved or deleted since the folder was indexed?). "
            "Restore it or load the folder again."
        ) from None
    except tf.errors.OpError as e:
        raise ValueError(f"Cannot read image file {path}: {op_reason(e)}. {SKIP_HINT}") from None


def op_reason(error):
    """The reason in a TensorFlow op error's message, without the op and device decoration."""
    message = re.sub(r"\{\{.*?\}\}\s*", "", error.message.strip().splitlines()[-1])
    return re.sub(r"\s*\[Op:.*$", "", message).rstrip(" .")[:200]
