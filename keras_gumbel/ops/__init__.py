"""Pure Gumbel math on `keras.ops` and `keras.random`, for every backend.

- `relaxed`: noise, relaxed one-hot and binary samples, straight-through,
  log-densities (one categorical or Bernoulli choice).
"""

from keras_gumbel.ops.relaxed import gumbel_noise
from keras_gumbel.ops.relaxed import gumbel_sigmoid
from keras_gumbel.ops.relaxed import gumbel_softmax
from keras_gumbel.ops.relaxed import logistic_noise
from keras_gumbel.ops.relaxed import one_hot_argmax
from keras_gumbel.ops.relaxed import relaxed_bernoulli_log_prob
from keras_gumbel.ops.relaxed import relaxed_one_hot_log_prob
from keras_gumbel.ops.relaxed import straight_through
from keras_gumbel.ops.relaxed import tempered_sigmoid
from keras_gumbel.ops.relaxed import tempered_softmax
from keras_gumbel.ops.relaxed import threshold
from keras_gumbel.ops.relaxed import uniform_noise

__all__ = [
    "gumbel_noise",
    "gumbel_sigmoid",
    "gumbel_softmax",
    "logistic_noise",
    "one_hot_argmax",
    "relaxed_bernoulli_log_prob",
    "relaxed_one_hot_log_prob",
    "straight_through",
    "tempered_sigmoid",
    "tempered_softmax",
    "threshold",
    "uniform_noise",
]
