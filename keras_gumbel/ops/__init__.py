"""Pure Gumbel math on `keras.ops` and `keras.random`, for every backend.

- `codebook`: code-vector lookup, codebook perplexity and diversity loss of
  vector quantizers.
- `relaxed`: noise, relaxed one-hot and binary samples, straight-through,
  log-densities (one categorical or Bernoulli choice).
- `permutations`: Sinkhorn, Gumbel-Sinkhorn, exact maximum-weight matching
  and relaxed sorting (NeuralSort, SoftSort).
- `subsets`: k classes without replacement, exact (Gumbel-top-k) and
  relaxed (successive softmaxes).
"""

from keras_gumbel.ops.codebook import codebook_perplexity
from keras_gumbel.ops.codebook import diversity_loss
from keras_gumbel.ops.codebook import select_codevectors
from keras_gumbel.ops.permutations import gumbel_sinkhorn
from keras_gumbel.ops.permutations import matching
from keras_gumbel.ops.permutations import neural_sort
from keras_gumbel.ops.permutations import permutation_matrix
from keras_gumbel.ops.permutations import sinkhorn
from keras_gumbel.ops.permutations import soft_sort
from keras_gumbel.ops.permutations import sort_indices
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
    "gumbel_sinkhorn",
    "gumbel_softmax",
    "gumbel_top_k",
    "k_hot_top_k",
    "logistic_noise",
    "matching",
    "neural_sort",
    "one_hot_argmax",
    "permutation_matrix",
    "relaxed_bernoulli_log_prob",
    "relaxed_one_hot_log_prob",
    "relaxed_top_k",
    "select_codevectors",
    "sinkhorn",
    "soft_sort",
    "sort_indices",
    "straight_through",
    "tempered_sigmoid",
    "tempered_softmax",
    "threshold",
    "uniform_noise",
]
