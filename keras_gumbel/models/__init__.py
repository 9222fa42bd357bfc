"""The models of Jang, Gu & Poole (2017), and their evaluation."""

from keras_gumbel._extras import require_extra

require_extra("keras_gumbel.models", "tensorflow")

from keras_gumbel.models.bernoulli_vae import BernoulliVAE
from keras_gumbel.models.categorical_vae import CategoricalVAE
from keras_gumbel.models.discrete_vae import DiscreteVAE
from keras_gumbel.models.evaluation import importance_bound
from keras_gumbel.models.evaluation import independent_pixels_nll
from keras_gumbel.models.latent_sampler import LatentSampler
from keras_gumbel.models.latents import BernoulliLatent
from keras_gumbel.models.latents import CategoricalLatent
from keras_gumbel.models.semi_supervised_vae import SemiSupervisedVAE
from keras_gumbel.models.stochastic_binary_network import StochasticBinaryNetwork

__all__ = [
    "BernoulliLatent",
    "BernoulliVAE",
    "CategoricalLatent",
    "CategoricalVAE",
    "DiscreteVAE",
    "LatentSampler",
    "SemiSupervisedVAE",
    "StochasticBinaryNetwork",
    "importance_bound",
    "independent_pixels_nll",
]
