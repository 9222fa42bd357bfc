"""Gradient estimators for discrete latent variables, selectable by name."""

from keras_gumbel.estimators.estimator import KINDS
from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import exact_sample
from keras_gumbel.estimators.pathwise import GumbelSoftmaxEstimator
from keras_gumbel.estimators.pathwise import StraightThroughEstimator
from keras_gumbel.estimators.pathwise import STGumbelSoftmaxEstimator

ESTIMATORS = {
    cls.name: cls
    for cls in (
        GumbelSoftmaxEstimator,
        STGumbelSoftmaxEstimator,
        StraightThroughEstimator,
    )
}


def get(identifier):
    """Returns an estimator from its name, or `identifier` if it is one."""
    if isinstance(identifier, Estimator):
        return identifier
    if identifier not in ESTIMATORS:
        raise ValueError(
            "Invalid value received for argument `estimator`. Expected one of "
            f"{sorted(ESTIMATORS)}. Received: estimator={identifier!r}"
        )
    return ESTIMATORS[identifier]()


__all__ = [
    "ESTIMATORS",
    "KINDS",
    "Estimator",
    "check_kind",
    "GumbelSoftmaxEstimator",
    "STGumbelSoftmaxEstimator",
    "StraightThroughEstimator",
    "exact_sample",
    "get",
]
