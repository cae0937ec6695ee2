"""`explain_read_error`: a pipeline's failure to read an image, as one clear `ValueError`.

A streaming pipeline stops with a TensorFlow error when an image file cannot be read mid-epoch.
The check in the pipeline names the file (`image_decoding.check_readable`); a file that vanished
is named by TensorFlow's NotFoundError; a file that passes the check but fails to decode is found
here by reading the split's files one by one (only after a failure). `fine_tune` and the
`kerastransfer` command raise the result, so a run ends with the file, the reason and the fix.
"""

import re

import tensorflow as tf

from kerastransfer.data.image_decoding import SKIP_HINT, read_image

_NAMED = re.compile(r"(Cannot read image file .*?" + re.escape(SKIP_HINT) + ")", re.S)
_DECODE_OPS = ("jpeg", "png", "gif", "bmp", "image", "decode")


def explain_read_error(error, data, splits=("train", "validation", "test")):
    """A `ValueError` naming the unreadable file behind `error` (a `tf.errors.OpError` raised
    while iterating a pipeline of `data`), or None if `error` is not about reading an image."""
    message = getattr(error, "message", str(error))
    named = _NAMED.search(message)
    if named:
        return ValueError(named.group(1).replace("\\'", "'"))
    if isinstance(error, tf.errors.NotFoundError):
        path = message.split(";")[0].strip().rsplit("}}", 1)[-1].strip()
        return ValueError(
            f"Image file '{path}' does not exist (moved or deleted since the dataset was "
            f"indexed?). Restore it or load the dataset again. {SKIP_HINT}"
        )
    if not getattr(data, "streams", False) or not any(w in message.lower() for w in _DECODE_OPS):
        return None
    for split in splits:
        for path in data.file_paths(split) if split in data.splits else ():
            try:
                read_image(path, data.image_shape, data.resize)
            except ValueError as e:
                return e
    return None
