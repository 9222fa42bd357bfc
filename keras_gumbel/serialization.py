"""The one decorator that registers keras-gumbel classes with Keras.

Registered classes are saved as `keras_gumbel>ClassName` and load from a
`.keras` file without `custom_objects`.
"""

import keras

PACKAGE = "keras_gumbel"


def register(cls):
    """Registers `cls` for Keras serialization under the `keras_gumbel` package."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
