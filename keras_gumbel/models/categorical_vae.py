"""The categorical VAE of Jang et al. (2017)."""

from keras_gumbel.models.discrete_vae import DiscreteVAE
from keras_gumbel.serialization import register


@register
class CategoricalVAE(DiscreteVAE):
    """VAE with `num_vars` categorical latents of `num_classes` classes.

    The paper's model: 20 variables of 10 classes, MLP encoder 784-512-256
    and decoder 256-512-784 with ReLU, trained with the Gumbel-Softmax
    estimator and an annealed temperature (Table 1: 101.5 nats on
    binarized MNIST with Gumbel-Softmax).

    Args:
        num_vars: Integer >= 1. Number of categorical variables. Defaults to 20.
        num_classes: Integer >= 2. Classes per variable. Defaults to 10.
        encoder_units: List of integers. Hidden sizes of the encoder MLP.
        decoder_units: List of integers. Hidden sizes of the decoder MLP.
        estimator: String. Gradient estimator, a name from
            `keras_gumbel.estimators.ESTIMATORS`. Defaults to "gumbel_softmax".
        temperature: Float > 0. Initial temperature of the sampler.
        prior: `"uniform"` or `"learned"` categorical prior.
        seed: Optional integer seed of the sampler.
        **kwargs: Base `keras.Model` keyword arguments.

    Example:

    ```python
    model = CategoricalVAE()
    model.compile(optimizer="adam")
    model.fit(images, epochs=10,
              callbacks=[TemperatureScheduler(ExponentialDecay(rate=1e-4))])
    codes = model.encode(images)          # int64 [batch, 20]
    means = model.decode(codes)           # float32 [batch, 784]
    ```

    Reference:
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017.
    """

    def __init__(self, num_vars=20, num_classes=10, **kwargs):
        super().__init__("categorical", num_vars, num_classes, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config
