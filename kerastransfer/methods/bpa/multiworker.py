"""BPA training across machines: a custom loop for `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3 `model.fit` does not run under `MultiWorkerMirroredStrategy` (keras-team/keras#20585), so
this module trains a `BPAModel` with a plain `strategy.run` loop:

- the loss of each replica is the sum of its per-example losses divided by the *global* batch size
  (`tf.nn.compute_average_loss`), so the gradients all-reduced (summed) by the optimizer are those
  of the global-batch mean;
- each filter's gradients are multiplied by its Gamma (`BPAModel.scale_gradients`), as in `fit`;
- Gamma is computed from confusion matrices summed over every replica of every worker
  (`BPAModel.compute_gamma(..., strategy=strategy)`), so all workers apply the same Gamma.

Run one process per worker, each with its `TF_CONFIG` (the tests run two workers on 127.0.0.1 with
`tests/methods/bpa/multiworker_worker.py`).

Example (one worker, no cluster: the strategy then runs locally):

>>> import numpy as np, tensorflow as tf
>>> from kerastransfer.models import small_cnn
>>> strategy = tf.distribute.MultiWorkerMirroredStrategy()  # doctest: +SKIP
>>> trainer = MultiWorkerTrainer(strategy, small_cnn)  # doctest: +SKIP
>>> x, y = np.random.rand(32, 28, 28, 1) * 255, np.arange(32) % 10  # doctest: +SKIP
>>> data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # doctest: +SKIP
>>> history = trainer.fit(data, epochs=1)  # doctest: +SKIP
"""

import keras
import numpy as np
import tensorflow as tf

from kerastransfer.methods.bpa.bpa_model import BPAModel


class MultiWorkerTrainer:
    """Trains a `BPAModel` with a custom loop under any `tf.distribute` strategy.

    Args:
        strategy: a `tf.distribute.Strategy` (typically `MultiWorkerMirroredStrategy`).
        model_fn: builds the functional model; called inside `strategy.scope()`.
        optimizer_fn: builds the optimizer inside the scope (default: SGD, lr 0.01, momentum 0.9).
        loss: a Keras loss (name or instance) for integer labels and class scores.
        split_layers, gamma, normalization: see `BPAModel`.
    """

    def __init__(
        self,
        strategy,
        model_fn,
        optimizer_fn=None,
        loss="sparse_categorical_crossentropy",
        *,
        split_layers=None,
        gamma="paper",
        normalization="max",
    ):
        self.strategy = strategy
        with strategy.scope():
            self.model = BPAModel(
                model_fn(), split_layers=split_layers, gamma=gamma, normalization=normalization
            )
            if optimizer_fn is None:
                self.optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
            else:
                self.optimizer = optimizer_fn()
            self.optimizer.build(self.model.trainable_variables)
        loss = keras.losses.get(loss)
        if isinstance(loss, keras.losses.Loss):
            config = loss.get_config()
            config["reduction"] = None  # per-example losses; averaged over the global batch below
            loss = loss.__class__.from_config(config)
        elif not callable(loss):
            raise ValueError(
                f"`loss` must be a Keras loss name, function or instance. Received: {loss!r}"
            )
        self.loss = loss  # loss functions (e.g. from a name) already return per-example losses
        self._train = tf.function(self._distributed_step)

    def _replica_step(self, x, y):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=True)
            per_example = self.loss(y, y_pred)
            loss = tf.nn.compute_average_loss(per_example)  # / global batch size
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        gradients = tape.gradient(loss, variables)
        gradients = self.model.scale_gradients(gradients, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))  # all-reduces (sums) gradients
        return loss

    def _distributed_step(self, x, y):
        per_replica = self.strategy.run(self._replica_step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def fit(self, dataset, epochs=1, *, gamma_data=None, refresh_every=1):
        """Trains on `dataset` (global batches of `(x, y)`); returns per-epoch mean losses.

        Gamma is computed on `gamma_data` (default: `dataset`) at the start of epoch 0 and every
        `refresh_every` epochs after it.
        """
        gamma_data = dataset if gamma_data is None else gamma_data
        distributed = self.strategy.experimental_distribute_dataset(dataset)
        history = {"loss": [], "gamma": []}
        for epoch in range(epochs):
            if epoch % refresh_every == 0:
                self.model.compute_gamma(gamma_data, strategy=self.strategy)
            history["gamma"].append(self.model.gamma)
            losses = [float(self._train(x, y)) for x, y in distributed]
            history["loss"].append(float(np.mean(losses)))
        return history
