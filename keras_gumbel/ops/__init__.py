"""Pure Gumbel math on `keras.ops` and `keras.random`, for every backend.

- `codebook`: code-vector lookup, codebook perplexity and diversity loss of
  vector quantizers.
- `relaxed`: noise, relaxed one-hot and binary samples, straight-through,
  log-densities (one categorical or Bernoulli choice).
- `subsets`: k classes without replacement, exact (Gumbel-top-k) and
  relaxed (successive softmaxes).
"""

from keras_gumbel.ops.codebook import codebook_perplexity
from keras_gumbel.ops.codebook import diversity_loss
from keras_gumbel.ops.codebook import select_codevectors
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
from keras_gumbel.ops.subsets import gumbel_top_k
from keras_gumbel.ops.subsets import k_hot_top_k
from keras_gumbel.ops.subsets import relaxed_top_k

__all__ = [
    "codebook_perplexity",
    "diversity_loss",
    "gumbel_noise",
    "gumbel_sigmoid",
    "gumbel_softmax",
    "gumbel_top_k",
    "k_hot_top_k",
    "logistic_noise",
    "one_hot_argmax",
    "relaxed_bernoulli_log_prob",
    "relaxed_one_hot_log_prob",
    "relaxed_top_k",
    "select_codevectors",
    "straight_through",
    "tempered_sigmoid",
    "tempered_softmax",
    "threshold",
    "uniform_noise",
]
