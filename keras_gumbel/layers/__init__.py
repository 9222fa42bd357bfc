"""Keras layers that sample Gumbel-Softmax relaxations."""

from keras_gumbel.layers.gumbel_sigmoid import GumbelSigmoid
from keras_gumbel.layers.gumbel_softmax import GumbelSoftmax
from keras_gumbel.layers.gumbel_vector_quantizer import GumbelVectorQuantizer
from keras_gumbel.layers.temperature_layer import TemperatureFloor
from keras_gumbel.layers.temperature_layer import TemperatureLayer

__all__ = [
    "GumbelSigmoid",
    "GumbelSoftmax",
    "GumbelVectorQuantizer",
    "TemperatureFloor",
    "TemperatureLayer",
]
