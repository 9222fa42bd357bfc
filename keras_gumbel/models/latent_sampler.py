"""A temperature-bearing layer that samples latents with a chosen estimator."""

from keras_gumbel import estimators as estimators_lib
from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers.temperature_layer import TemperatureLayer
from keras_gumbel.serialization import register


@register
class LatentSampler(TemperatureLayer):
    """Samples discrete latents with a gradient estimator chosen by name.

    In training it returns `estimator.sample(logits, kind, tau)`; at
    inference the mode (one-hot of the argmax, or `1[logits > 0]`). Its
    temperature is annealed by `TemperatureScheduler` like any
    `GumbelSoftmax` layer; estimators that ignore the temperature ignore it.

    Args:
        kind: `"categorical"` (classes on the last axis) or `"bernoulli"`.
        estimator: String or dict. A name from
            `keras_gumbel.estimators.ESTIMATORS`, or a config dict such as
            `{"class_name": "gumbel_rao", "config": {"num_samples": 100}}`.
        temperature: Float > 0. Initial temperature.
        seed: Optional integer seed.
        **kwargs: Base layer keyword arguments.
    """

    def __init__(
        self, kind="categorical", estimator="gumbel_softmax", temperature=1.0, seed=None, **kwargs
    ):
        super().__init__(temperature=temperature, seed=seed, **kwargs)
        estimators_lib.check_kind(kind)
        self.kind = kind
        self.estimator = estimator
        self._estimator = estimators_lib.get(estimator)

    def sample(self, logits, temperature, mask):
        return self._estimator.sample(logits, self.kind, temperature, seed=self.seed_generator)

    def deterministic(self, logits, temperature, mask):
        if self.kind == "categorical":
            return gumbel_ops.one_hot_argmax(logits)
        return gumbel_ops.threshold(logits)

    def build_baseline(self, input_shape, logits_shape):
        """Creates the estimator's input-dependent weights (score-function
        baselines) for model inputs of `input_shape`; a no-op for others."""
        self._estimator.build_baseline(input_shape, logits_shape, self.kind)

    def exact_sample(self, logits):
        """An exact discrete sample drawn with this layer's seed generator."""
        return estimators_lib.exact_sample(logits, self.kind, seed=self.seed_generator)

    def get_config(self):
        config = super().get_config()
        for key in ("hard", "sample_at_inference", "learn_temperature", "min_temperature"):
            config.pop(key)
        config.update({"kind": self.kind, "estimator": self.estimator})
        return config
