"""Keras callbacks of keras-gumbel."""

from keras_gumbel.callbacks.code_usage import CodeUsage
from keras_gumbel.callbacks.temperature_scheduler import TemperatureScheduler
from keras_gumbel.callbacks.temperature_scheduler import temperature_layers

__all__ = [
    "CodeUsage",
    "TemperatureScheduler",
    "temperature_layers",
]
