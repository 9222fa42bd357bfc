"""Finding the layers of a model that implement the discrete-codes protocol.

Backend-agnostic (Keras only): the exporter and the code-usage callback
both find a model's codes layers here, in any model (functional,
sequential, subclassed, nested).
"""

import keras

from keras_gumbel.layers.temperature_layer import TemperatureLayer


def has_discrete_codes(layer):
    """Whether `layer` implements `discrete_codes` (not just declares it)."""
    method = getattr(type(layer), "discrete_codes", None)
    return callable(method) and method is not TemperatureLayer.discrete_codes


def _layers_in(value):
    if isinstance(value, keras.layers.Layer):
        return [value]
    if isinstance(value, (list, tuple)):
        return [layer for item in value for layer in _layers_in(item)]
    if isinstance(value, dict):
        return [layer for item in value.values() for layer in _layers_in(item)]
    return []


def _sublayers(layer):
    # Keras 3 lists a model's layers publicly: `Model.layers` covers
    # functional, sequential and subclassed models, a nested model being
    # one entry that we descend into. A plain layer's sublayers have no
    # public listing (`Layer._flatten_layers` and `Layer._layers` are
    # private and have changed between releases), so for layers we follow
    # what Keras's own attribute tracking follows: layers held in
    # attributes, directly or inside lists, tuples and dicts.
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    return [found for value in vars(layer).values() for found in _layers_in(value)]


def all_layers(model):
    """`[(path, layer)]` of every layer inside `model`, depth first.

    A path joins the layer names from the model down, e.g.
    "encoder/codes"; a layer reachable twice is listed once.
    """
    found, seen = [], {id(model)}

    def walk(layer, prefix):
        for child in _sublayers(layer):
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}{child.name}"
            found.append((path, child))
            walk(child, path + "/")

    walk(model, "")
    return found


def codes_layers(model):
    """`[(path, layer)]` of the layers inside `model` that have discrete codes."""
    return [(path, layer) for path, layer in all_layers(model) if has_discrete_codes(layer)]
