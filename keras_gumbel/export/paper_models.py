"""The fixed signatures of the package's own models.

`CategoricalVAE`, `BernoulliVAE` and `StochasticBinaryNetwork` export with
these signatures (batch dimension first and unknown):

```
encode (serving_default)  images float32 [-1, D]  ->  codes int64 [-1, N],
                                                      one_hot float32 [-1, N, K]
encode_probs              images float32 [-1, D]  ->  probs float32 [-1, N, K]
decode                    codes int64 [-1, N]     ->  means float32 [-1, D_out]
reconstruct               images float32 [-1, D]  ->  means float32 [-1, D_out]
```

`D` is the flattened input size (784 for MNIST; the upper half, 392, for a
stochastic binary network, whose `D_out` is the lower half), `N` the number
of latent variables and `K` their number of classes (2 for binary units,
whose `one_hot` is `[1 - bit, bit]`).
"""

import numpy as np
import tensorflow as tf

from keras_gumbel.export.errors import ExportError

#: The signatures an export of the package's own models serves.
SIGNATURES = ("encode", "encode_probs", "decode", "reconstruct")


def is_paper_model(model):
    """Whether `model` is one of the package's VAEs or SBNs."""
    from keras_gumbel.models.discrete_vae import DiscreteVAE
    from keras_gumbel.models.stochastic_binary_network import StochasticBinaryNetwork

    return isinstance(model, (DiscreteVAE, StochasticBinaryNetwork))


def _sizes(model):
    latent = model.latent
    output_dim = getattr(model, "output_dim", None) or model.input_dim
    return model.input_dim, latent.num_vars, latent.num_classes, output_dim


def _probs(model, images):
    if hasattr(model, "latent_logits"):
        logits = model.latent_logits(images)
    else:
        # A stochastic binary network: the last layer's logits along the mode path.
        h = tf.cast(images, tf.float32)
        for i in range(model.num_layers):
            logits = model._layer_logits(i, h)
            h = model.latent.mode(logits)
    if model.latent.kind == "categorical":
        return tf.nn.softmax(logits, axis=-1)
    p = tf.sigmoid(logits)
    return tf.stack([1.0 - p, p], axis=-1)


class PaperModelExport:
    """What `export_model` writes and checks for a package model."""

    signatures = SIGNATURES

    def __init__(self, model, sample_images, codes_layer=None, decoder=None):
        if codes_layer is not None or decoder is not None:
            raise ExportError(
                f"{type(model).__name__} exports with its own fixed signatures; codes_layer= "
                "and decoder= apply to other models"
            )
        self.model = model
        self.sample_images = np.asarray(sample_images, np.float32)
        self.num_examples = len(self.sample_images)
        self.tracked = [model]

    def endpoints(self):
        """The signature functions, traced with named, batch-first input specs.

        The first one becomes `serving_default`.
        """
        model = self.model
        d, n, k, _ = _sizes(model)
        images = tf.TensorSpec([None, d], tf.float32, name="images")
        codes_spec = tf.TensorSpec([None, n], tf.int64, name="codes")

        def encode(images):
            codes = tf.cast(model.encode(images), tf.int64)
            return {"codes": codes, "one_hot": tf.one_hot(codes, k, dtype=tf.float32)}

        def encode_probs(images):
            return {"probs": _probs(model, images)}

        def decode(codes):
            return {"means": model.decode(codes)}

        def reconstruct(images):
            return {"means": model.reconstruct(images)}

        functions = {
            "encode": (encode, images),
            "encode_probs": (encode_probs, images),
            "decode": (decode, codes_spec),
            "reconstruct": (reconstruct, images),
        }
        return {
            name: tf.function(fn, input_signature=[spec], autograph=False)
            for name, (fn, spec) in functions.items()
        }

    def cases(self):
        """`{signature: (inputs, expected outputs)}` on the sample images."""
        model, x = self.model, self.sample_images
        images = tf.constant(x)
        codes = tf.cast(model.encode(images), tf.int64).numpy()
        return {
            "encode": ({"images": x}, {"codes": codes}),
            "encode_probs": ({"images": x}, {"probs": _probs(model, images).numpy()}),
            "decode": ({"codes": codes}, {"means": model.decode(codes).numpy()}),
            "reconstruct": ({"images": x}, {"means": model.reconstruct(images).numpy()}),
        }

    def contract(self, endpoints):
        d, n, k, d_out = _sizes(self.model)
        return {"D": d, "N": n, "K": k, "D_out": d_out, "signatures": list(SIGNATURES)}
