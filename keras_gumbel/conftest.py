"""Setup of the docstring examples, run with `pytest --doctest-modules`.

Every example starts from the same global random state, so an example that
draws without a seed still shows the same output on every run of a given
backend. The backend-agnostic core (`ops`, `layers`, `schedules`,
`callbacks`) runs on every backend; the rest of the package builds on
TensorFlow (tf.data pipelines, models with TensorFlow train steps,
SavedModel export, serving), so its examples are skipped, with a reason, on
other backends.
"""

import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Paths (relative to this folder) whose examples run on every Keras backend.
_BACKEND_AGNOSTIC = ("__init__.py", "ops", "layers", "schedules.py", "callbacks")


def _in_package(path):
    return os.path.abspath(os.fspath(path)).startswith(_PACKAGE_DIR + os.sep)


def _is_backend_agnostic(path):
    relative = os.path.relpath(os.fspath(path), _PACKAGE_DIR)
    return relative.split(os.sep)[0] in _BACKEND_AGNOSTIC


def pytest_ignore_collect(collection_path, config):
    # Without TensorFlow installed (keras with JAX or PyTorch alone), the
    # TensorFlow-only modules cannot even be imported to find their examples.
    if (
        importlib.util.find_spec("tensorflow") is None
        and collection_path.suffix == ".py"
        and _in_package(collection_path)
    ):
        return not _is_backend_agnostic(collection_path)
    return None


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(
        reason=f"TensorFlow-only module: its examples need the TensorFlow backend, not {backend}"
    )
    for item in items:
        if (
            isinstance(item, pytest.DoctestItem)
            and _in_package(item.path)
            and not _is_backend_agnostic(item.path)
        ):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded_doctest(request):
    """Seeds Python, NumPy and the backend before each docstring example."""
    if isinstance(request.node, pytest.DoctestItem):
        keras.utils.set_random_seed(0)
    yield
