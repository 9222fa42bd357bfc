"""Gradient estimators for discrete latent variables, selectable by name.

| name                        | class                            | biased | evaluations | kinds |
|-----------------------------|----------------------------------|--------|-------------|-------|
| `gumbel_softmax`            | `GumbelSoftmaxEstimator`         | yes    | 1           | both  |
| `st_gumbel_softmax`         | `STGumbelSoftmaxEstimator`       | yes    | 1           | both  |
| `straight_through`          | `StraightThroughEstimator`       | yes    | 1           | both  |
| `annealed_straight_through` | `AnnealedStraightThroughEstimator` | yes  | 1           | both  |
| `score_function`            | `ScoreFunctionEstimator`         | no     | 1           | both  |
| `darn`                      | `DARNEstimator`                  | yes    | 1 + backward | both |
| `muprop`                    | `MuPropEstimator`                | no     | 2 + backward | both |
| `reinmax`                   | `ReinMaxEstimator`               | yes    | 1           | both  |
| `gumbel_rao`                | `GumbelRaoEstimator`             | yes    | 1 (K softmaxes) | both |
| `gapped_straight_through`   | `GappedStraightThroughEstimator` | yes    | 1           | both  |

`get` accepts a name, an `{"class_name": name, "config": {...}}` dict (what
`serialize` returns, for estimators with arguments, e.g.
`{"class_name": "gumbel_rao", "config": {"num_samples": 100}}`), or an
estimator instance.
"""

from keras_gumbel.estimators.darn import DARNEstimator
from keras_gumbel.estimators.estimator import KINDS
from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import exact_sample
from keras_gumbel.estimators.estimator import mean
from keras_gumbel.estimators.estimator import sample_noise
from keras_gumbel.estimators.gapped_straight_through import GappedStraightThroughEstimator
from keras_gumbel.estimators.gumbel_rao import GumbelRaoEstimator
from keras_gumbel.estimators.muprop import MuPropEstimator
from keras_gumbel.estimators.pathwise import AnnealedStraightThroughEstimator
from keras_gumbel.estimators.pathwise import GumbelSoftmaxEstimator
from keras_gumbel.estimators.pathwise import STGumbelSoftmaxEstimator
from keras_gumbel.estimators.pathwise import StraightThroughEstimator
from keras_gumbel.estimators.reinmax import ReinMaxEstimator
from keras_gumbel.estimators.score_function import ScoreFunctionEstimator

#: Every estimator class by its name, the names `get` and the models accept.
ESTIMATORS = {
    cls.name: cls
    for cls in (
        GumbelSoftmaxEstimator,
        STGumbelSoftmaxEstimator,
        StraightThroughEstimator,
        AnnealedStraightThroughEstimator,
        ScoreFunctionEstimator,
        DARNEstimator,
        MuPropEstimator,
        ReinMaxEstimator,
        GumbelRaoEstimator,
        GappedStraightThroughEstimator,
    )
}


def _unknown(identifier):
    return ValueError(
        "Invalid value received for argument `estimator`. Expected one of "
        f"{sorted(ESTIMATORS)}, a {{'class_name': name, 'config': {{...}}}} "
        f"dict or an Estimator. Received: estimator={identifier!r}"
    )


def get(identifier):
    """Returns a new estimator from a name or a config dict, or `identifier`
    itself if it is an estimator."""
    if isinstance(identifier, Estimator):
        return identifier
    if isinstance(identifier, dict):
        if (
            set(identifier) - {"class_name", "config"}
            or identifier.get("class_name") not in ESTIMATORS
        ):
            raise _unknown(identifier)
        config = identifier.get("config") or {}
        try:
            return ESTIMATORS[identifier["class_name"]](**config)
        except TypeError as error:
            raise ValueError(
                f"Invalid config for estimator {identifier['class_name']!r}: {error}"
            ) from None
    if not isinstance(identifier, str) or identifier not in ESTIMATORS:
        raise _unknown(identifier)
    return ESTIMATORS[identifier]()


def serialize(estimator):
    """`{"class_name": name, "config": {...}}`, JSON-serializable, for `get`."""
    return {"class_name": estimator.name, "config": estimator.get_config()}


__all__ = [
    "ESTIMATORS",
    "KINDS",
    "AnnealedStraightThroughEstimator",
    "DARNEstimator",
    "Estimator",
    "GappedStraightThroughEstimator",
    "GumbelRaoEstimator",
    "GumbelSoftmaxEstimator",
    "MuPropEstimator",
    "ReinMaxEstimator",
    "STGumbelSoftmaxEstimator",
    "ScoreFunctionEstimator",
    "StraightThroughEstimator",
    "check_kind",
    "exact_sample",
    "get",
    "mean",
    "sample_noise",
    "serialize",
]
