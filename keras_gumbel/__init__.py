"""keras-gumbel: Gumbel-Softmax (Concrete) relaxations for Keras 3.

Layers that draw differentiable samples of categorical and Bernoulli
variables, a callback that anneals their temperature, and the models of
Jang, Gu & Poole (ICLR 2017) and Maddison, Mnih & Teh (ICLR 2017).
"""

__version__ = "0.1.0"

from keras_gumbel import callbacks
from keras_gumbel import layers
from keras_gumbel import ops
from keras_gumbel import schedules
from keras_gumbel.callbacks import CodeUsage
from keras_gumbel.callbacks import TemperatureScheduler
from keras_gumbel.layers import ConcreteSelect
from keras_gumbel.layers import GumbelSigmoid
from keras_gumbel.layers import GumbelSoftmax
from keras_gumbel.layers import GumbelTopK
from keras_gumbel.layers import GumbelVectorQuantizer

__all__ = [
    "CodeUsage",
    "ConcreteSelect",
    "GumbelSigmoid",
    "GumbelSoftmax",
    "GumbelTopK",
    "GumbelVectorQuantizer",
    "TemperatureScheduler",
    "callbacks",
    "layers",
    "ops",
    "schedules",
]
