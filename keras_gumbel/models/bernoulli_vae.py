"""The Bernoulli VAE of Jang et al. (2017)."""

from keras_gumbel.models.discrete_vae import DiscreteVAE
from keras_gumbel.serialization import register


@register
class BernoulliVAE(DiscreteVAE):
    """VAE with `num_vars` binary latent units (200 in the paper).

    Same networks and objective as `CategoricalVAE`, with Bernoulli latents
    sampled by the binary Gumbel-Softmax (Table 1: 105.0 nats on binarized
    MNIST with Gumbel-Softmax).

    Args:
        num_vars: Integer >= 1. Number of binary units. Defaults to 200.
        **kwargs: As `CategoricalVAE`: `encoder_units`, `decoder_units`,
            `estimator`, `temperature`, `prior`, `seed` and base model
            arguments.

    Reference:
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017.
    """

    def __init__(self, num_vars=200, **kwargs):
        super().__init__("bernoulli", num_vars, **kwargs)
