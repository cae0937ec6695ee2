"""`mobilenet_v2_classifier`: an ImageNet MobileNetV2 with its preprocessing and a new head."""

from kerastransfer.methods.feature_extraction import pooled_body
from kerastransfer.surgery import replace_head


def mobilenet_v2_classifier(
    input_shape=(96, 96, 3),
    num_classes=10,
    *,
    weights="imagenet",
    dropout=0.2,
    flat=False,
    name="mobilenet_transfer",
):
    """MobileNetV2 (ImageNet weights by default) with its own preprocessing and a new softmax head.

    The body is `pooled_body("MobileNetV2", input_shape)` (raw [0, 255] pixels, a 1-channel
    input gets the first kernel summed over RGB) and the head `surgery.replace_head`'s:
    `dropout_new`, `classifier_new`. Weights load from `$KERAS_HOME/models/` when the file is
    there, so this works offline once the file is in place. The backbone is nested under the
    name `mobilenetv2_1.00_{size}`, or with `flat=True` its layers are the model's own (as
    SpotTune's blocks must be).

    Args:
        weights: "imagenet", None (random initialisation) or an ImageNet weights file (no top).
        dropout: rate of the dropout before the classifier (0 for none).
        flat: the backbone's layers in the model itself instead of one nested model.

    Example:

    >>> model = mobilenet_v2_classifier((96, 96, 3), 5, weights=None)
    >>> model.output_shape, [layer.name for layer in model.layers][1:]
    ((None, 5), ['preprocess', 'mobilenetv2_1.00_96', 'dropout_new', 'classifier_new'])
    >>> flat = mobilenet_v2_classifier((96, 96, 3), 5, weights=None, dropout=0.0, flat=True)
    >>> [layer.name for layer in flat.layers][1:3], len(flat.layers)
    (['preprocess', 'Conv1'], 157)
    """
    body, _ = pooled_body("MobileNetV2", input_shape, weights=weights, flat=flat)
    pooled = body.layers[-1].name  # the nested backbone, or the flat one's pooling
    return replace_head(body, num_classes, cut_layer=pooled, dropout=dropout, name=name)
