"""Keras layers that sample Gumbel-Softmax relaxations."""

from keras_gumbel.layers.concrete_select import ConcreteSelect
from keras_gumbel.layers.gumbel_sigmoid import GumbelSigmoid
from keras_gumbel.layers.gumbel_sinkhorn import GumbelSinkhorn
from keras_gumbel.layers.gumbel_softmax import GumbelSoftmax
from keras_gumbel.layers.gumbel_top_k import GumbelTopK
from keras_gumbel.layers.gumbel_vector_quantizer import GumbelVectorQuantizer
from keras_gumbel.layers.relaxed_sort import RelaxedSort
from keras_gumbel.layers.temperature_layer import TemperatureFloor
from keras_gumbel.layers.temperature_layer import TemperatureLayer

__all__ = [
    "ConcreteSelect",
    "GumbelSigmoid",
    "GumbelSinkhorn",
    "GumbelSoftmax",
    "GumbelTopK",
    "GumbelVectorQuantizer",
    "RelaxedSort",
    "TemperatureFloor",
    "TemperatureLayer",
]
