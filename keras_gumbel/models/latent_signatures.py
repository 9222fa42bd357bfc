"""The SavedModel signatures of the package's models with one served latent layer.

`CategoricalVAE`, `BernoulliVAE` and `StochasticBinaryNetwork` declare
these signatures with `export_signatures`, the method by which any model
declares its own to `keras_gumbel.export` (batch dimension first and
unknown):

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

SIGNATURES = ("encode", "encode_probs", "decode", "reconstruct")


class LatentSignatures:
    """Declares the export signatures of a model with one served latent layer.

    A mixin for `keras.Model`s with a `latent` family (`CategoricalLatent`
    or `BernoulliLatent`), an `input_dim` (and an `output_dim` when the
    output size differs), and the methods `latent_logits(x)`, `encode(x)`,
    `decode(codes)` and `reconstruct(x)`.
    """

    def export_signatures(self, sample_inputs):
        """The signatures this model exports with, for `keras_gumbel.export`.

        Args:
            sample_inputs: Float images `[n, D]`, the inputs the export is
                verified on; an unbuilt model is built from them.

        Returns:
            `{"signatures": {name: (function, {input: tf.TensorSpec})},
            "contract": {"D", "N", "K", "D_out"}}`, the signatures being
            `SIGNATURES` (see this module).

        Example:

        ```python
        model = CategoricalVAE(num_vars=4, num_classes=3)
        declared = model.export_signatures(np.zeros((2, 784), "float32"))
        list(declared["signatures"])  # ["encode", "encode_probs", ...]
        ```
        """
        if not self.built:
            self.latent_logits(np.asarray(sample_inputs, np.float32)[:1])
        latent = self.latent
        d, n, k = self.input_dim, latent.num_vars, latent.num_classes
        d_out = getattr(self, "output_dim", None) or d
        images_spec = tf.TensorSpec([None, d], tf.float32, name="images")
        codes_spec = tf.TensorSpec([None, n], tf.int64, name="codes")

        def encode(images):
            codes = tf.cast(self.encode(images), tf.int64)
            return {"codes": codes, "one_hot": tf.one_hot(codes, k, dtype=tf.float32)}

        def encode_probs(images):
            return {"probs": latent.probs(self.latent_logits(images))}

        def decode(codes):
            return {"means": self.decode(codes)}

        def reconstruct(images):
            return {"means": self.reconstruct(images)}

        functions = {
            "encode": (encode, images_spec),
            "encode_probs": (encode_probs, images_spec),
            "decode": (decode, codes_spec),
            "reconstruct": (reconstruct, images_spec),
        }
        return {
            "signatures": {
                name: (function, {spec.name: spec}) for name, (function, spec) in functions.items()
            },
            "contract": {"D": d, "N": n, "K": k, "D_out": d_out},
        }
