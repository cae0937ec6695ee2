"""The target network of a transfer: the source's pooled body at the input shape the transfer
trains at (`target_input_shape`), with the source's weights, and a new head
(`surgery.replace_head`)."""

import keras

from kerastransfer.fine_tuning.fine_tune_config import APPLICATION_IMAGE_SIZE
from kerastransfer.methods.feature_extraction import pooled_body
from kerastransfer.pretrained import application_builder, load_source, source_name
from kerastransfer.surgery import replace_head


def build_transfer_model(
    source, image_shape, num_classes, *, head_width=0, dropout=0.2, weights="imagenet"
):
    """The target network: source architecture at `image_shape`, source layers imported, new head.

    Returns `(model, body, head, import_report)`: `body` maps raw images to pooled features
    (`methods.feature_extraction.pooled_body`), `head` maps them to class probabilities (the new
    layers of `surgery.replace_head`: an optional ReLU layer `fc1_new` of `head_width` units,
    dropout, the softmax `classifier_new`), and `model` is `body` followed by the head's layers,
    shared with `body` and `head`.

    Layers are built in the global Keras dtype policy (a mixed policy reaches the layers cloned
    from a model source too); the classifier computes in float32.
    """
    if not application_builder(source):
        source = load_source(source)
    body, report = pooled_body(source, image_shape, weights=weights)
    model = replace_head(
        body,
        num_classes,
        cut_layer=body.layers[-1].name,
        hidden=(int(head_width),) if head_width else (),
        dropout=float(dropout),
        name=f"{source_name(source)}_transfer".lower(),
    )
    head = keras.Model(body.output, model.output, name="head")
    return model, body, head, report


def target_input_shape(source, data_shape, *, image_size=None, channels=None):
    """The input shape a transfer from `source` trains at.

    A `keras.applications` source (or a KerasHub preset) takes `image_size` x `image_size`
    (default `APPLICATION_IMAGE_SIZE`) images of `channels` channels (default: the data's,
    `data_shape`'s last); a model or `.keras` source keeps its own input shape, and `image_size`
    or `channels` for it are an error.

    Example:

    >>> target_input_shape("MobileNetV2", (28, 28, 1))
    (96, 96, 1)
    """
    if application_builder(source):
        size = int(image_size or APPLICATION_IMAGE_SIZE)
        return (size, size, int(channels or data_shape[-1]))
    if image_size or channels:
        raise ValueError(
            "`image_size` and `channels` apply to keras.applications sources only: a model "
            f"source keeps its own input shape. Received: image_size={image_size!r}, "
            f"channels={channels!r}"
        )
    return tuple(load_source(source).input_shape[1:])
