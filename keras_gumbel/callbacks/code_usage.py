"""The CodeUsage callback: perplexity, dead codes and usage of discrete codes."""

import collections
import contextlib
import inspect
import os
import warnings

import keras
import numpy as np
from keras import ops

from keras_gumbel.layers.discrete_codes import codes_layers
from keras_gumbel.layers.discrete_codes import has_discrete_codes

# The attribute of a codes layer that holds its counter during `fit`.
_COUNTER_ATTR = "_code_usage_counter"


class _CodeCounter(keras.layers.Layer):
    """Holds the code counts `[num_groups, num_codes]` of one codes layer.

    A layer, not a bare variable, so that it can be attached to a built
    codes layer for the time of `fit` without changing the codes layer's own
    variables (and so its saved files): Keras's JAX trainer carries exactly
    the model's variables through its stateless train step, so the counts
    must be one of them.
    """

    def __init__(self, num_groups, num_codes, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.num_groups = num_groups
        self.num_codes = num_codes
        # Float32 counts are exact integers up to 2**24 per code between two
        # reads, which `update_freq` bounds.
        self.counts = self.add_weight(
            name="code_counts",
            shape=(num_groups, num_codes),
            initializer="zeros",
            dtype="float32",
            trainable=False,
            autocast=False,
            # Keras adds as `assign(counts + batch_counts)`; under a
            # TensorFlow distribution strategy the replicas' assignments are
            # then averaged, so the variable holds the counts divided by the
            # number of replicas, which `CodeUsage` multiplies back.
            aggregation="mean",
        )
        self.built = True


def _group_layout(one_hot_shape, group_rank):
    """`(num_groups, num_codes)` of a `one_hot` shape `[batch, ..., K]`."""
    *leading, num_codes = one_hot_shape
    inner = list(leading[1:])
    if group_rank is None:
        group_axes = []
        for size in reversed(inner):
            if size is None:
                break
            group_axes.insert(0, size)
    else:
        group_axes = inner[len(inner) - group_rank :] if group_rank else []
        if None in group_axes or len(group_axes) != group_rank:
            raise ValueError(
                f"Expected {group_rank} known group axes before the class axis. "
                f"Received: one_hot.shape={tuple(one_hot_shape)}"
            )
    return int(np.prod(group_axes, dtype=np.int64)), int(num_codes)


def _batch_counts(layer, inputs, mask, num_groups, num_codes):
    """Float32 `[num_groups, num_codes]` counts of the codes of one call."""
    inputs = ops.stop_gradient(inputs)
    one_hot = layer.discrete_codes(inputs, mask=mask)["one_hot"]
    one_hot = ops.cast(ops.stop_gradient(one_hot), "float32")
    # A mask of lower rank than the codes that covers their leading axes is a
    # time-step (or unit) mask: masked positions use no code. A mask of the
    # inputs' full rank masks classes, which `discrete_codes` already honours.
    if mask is not None and len(mask.shape) < len(one_hot.shape):
        if tuple(mask.shape)[1:] == tuple(one_hot.shape)[1 : len(mask.shape)]:
            weight = ops.cast(mask, "float32")
            for _ in range(len(one_hot.shape) - len(mask.shape)):
                weight = ops.expand_dims(weight, -1)
            one_hot = one_hot * weight
    return ops.sum(ops.reshape(one_hot, (-1, num_groups, num_codes)), axis=0)


@contextlib.contextmanager
def _unlocked(layer):
    # Keras locks a built layer's state; it unlocks it the same way to add
    # quantization variables to built layers.
    tracker = layer._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        yield
    finally:
        if locked:
            tracker.lock()


def _attach(layer, counter):
    with _unlocked(layer):
        setattr(layer, _COUNTER_ATTR, counter)
    original = layer.call
    first = next(iter(inspect.signature(original).parameters))

    def call(*args, **kwargs):
        outputs = original(*args, **kwargs)
        # Keras passes `training` and `mask` by keyword, as Python values.
        if kwargs.get("training") is True:
            inputs = args[0] if args else kwargs[first]
            counter.counts.assign_add(
                _batch_counts(
                    layer, inputs, kwargs.get("mask"), counter.num_groups, counter.num_codes
                )
            )
        return outputs

    # An instance attribute set with `object.__setattr__`: Keras neither
    # tracks nor saves it, and `_detach` removes it.
    object.__setattr__(layer, "call", call)


def _detach(layer):
    if "call" in vars(layer):
        object.__delattr__(layer, "call")
    counter = getattr(layer, _COUNTER_ATTR, None)
    if counter is not None:
        with _unlocked(layer):
            layer._tracker.untrack(counter)
        if _COUNTER_ATTR in vars(layer):
            object.__delattr__(layer, _COUNTER_ATTR)
        else:
            # On the PyTorch backend a layer is a `torch.nn.Module`, which keeps
            # a layer set as an attribute among its submodules instead.
            layer._modules.pop(_COUNTER_ATTR, None)


def _perplexity(counts):
    """exp(entropy) of the usage distribution of each group of `[G, K]`."""
    totals = counts.sum(axis=-1, keepdims=True)
    p = counts / np.maximum(totals, 1.0)
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return np.exp(entropy)


class CodeUsage(keras.callbacks.Callback):
    """Logs how a model uses the codes of its discrete-codes layers.

    For every layer of the model that implements the discrete-codes protocol
    (`GumbelSoftmax`, `GumbelSigmoid`, `GumbelVectorQuantizer`, `GumbelTopK`,
    `ConcreteSelect`, or any layer with a `discrete_codes` method; nested
    models included), and for each group of its codes (a group is one
    categorical variable: a quantizer group, a latent variable, a sigmoid
    unit, a selected feature), the callback tracks during `fit`:

    - the perplexity of the code usage over the last `window` steps,
      `exp(-sum_k u[k] log u[k])` with `u` the fraction of positions that
      chose code `k`; summed over groups, as wav2vec 2.0's (and
      `keras_gumbel.ops.codebook_perplexity`): it lies in `[G, G * K]`, `G`
      when every group uses a single code, `G * K` for uniform use;
    - the number of dead codes: codes that no position chose over the last
      `dead_code_window` steps, summed over groups;
    - the usage histogram: the count of each code over the last `window`
      steps, per group (`histograms`, and TensorBoard).

    The codes counted are the deterministic codes (`discrete_codes`) of
    what the layer receives in each training step: the argmax codes that
    inference and export would give those inputs (fairseq's
    `code_perplexity`), not the noisy samples. Positions hidden by a
    time-step mask are left out.

    Counting happens inside the compiled train step: at `on_train_begin`
    the callback attaches a non-trainable `[groups, codes]` count variable
    to each codes layer and wraps the layer's `call` so that a training
    call adds its batch's code counts to it, then has Keras rebuild the
    train function (`make_train_function(force=True)`), which is traced
    only at the first step, after `on_train_begin`. The variable is part of
    the model's state, so it works with `jit_compile=True` and on JAX's
    stateless train step. The counts reach Python only every `update_freq`
    steps (and at the end of each epoch), where they are reset. At
    `on_train_end` the wrapper and the counters are removed and the train
    function rebuilt: the layers' outputs, weights, configs and saved files
    are never changed.

    The values go into the logs of each epoch (hence `History`) and of each
    batch after the first read, as `codes/perplexity` and
    `codes/dead_codes`, or `codes/<layer path>/perplexity` when the model
    has several codes layers; with `per_group=True` also one value per
    group, `codes/perplexity/group_<g>`. Put this callback before
    `CSVLogger` and `TensorBoard` in the callbacks list. With `log_dir`
    and TensorFlow installed, every read also writes the scalars and the
    per-group usage histograms to TensorBoard under `log_dir/code_usage`;
    without TensorFlow (JAX or PyTorch alone) it only logs.

    Args:
        update_freq: Integer >= 1. Steps between two reads of the counts.
        window: Integer >= 1. Steps of usage behind the perplexity and the
            histograms, rounded up to whole reads.
        dead_code_window: Integer >= 1 or None. Steps over which a code
            must stay unused to count as dead, rounded up to whole reads.
            Defaults to `window`.
        layers: Optional list of layers (or their names or paths) to
            watch. Defaults to every codes layer of the model.
        per_group: Boolean. Whether to log each group's values too.
        log_dir: Optional path of a TensorBoard log directory.
        prefix: String. The first part of every log key.

    Example:

    >>> import keras, numpy as np
    >>> from keras_gumbel.callbacks import CodeUsage
    >>> from keras_gumbel.layers import GumbelVectorQuantizer
    >>> model = keras.Sequential([keras.Input((8, 4)), GumbelVectorQuantizer(
    ...     num_groups=2, num_vars=16, codevector_dim=4, seed=0)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> x = np.random.default_rng(0).normal(size=(64, 8, 4)).astype("float32")
    >>> history = model.fit(x, x, epochs=2, verbose=0,
    ...                     callbacks=[CodeUsage(update_freq=1, window=2)])
    >>> sorted(k for k in history.history if k.startswith("codes/"))
    ['codes/dead_codes', 'codes/perplexity']
    """

    def __init__(
        self,
        update_freq=100,
        window=1000,
        dead_code_window=None,
        layers=None,
        per_group=False,
        log_dir=None,
        prefix="codes",
    ):
        super().__init__()
        for name, value in (("update_freq", update_freq), ("window", window)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"Invalid value received for argument `{name}`. Expected an "
                    f"integer >= 1. Received: {name}={value!r}"
                )
        if dead_code_window is not None and (
            not isinstance(dead_code_window, int)
            or isinstance(dead_code_window, bool)
            or dead_code_window < 1
        ):
            raise ValueError(
                "Invalid value received for argument `dead_code_window`. Expected "
                f"an integer >= 1 or None. Received: dead_code_window={dead_code_window!r}"
            )
        if not isinstance(per_group, bool):
            raise ValueError(
                "Invalid value received for argument `per_group`. Expected a "
                f"boolean. Received: per_group={per_group!r}"
            )
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(
                "Invalid value received for argument `prefix`. Expected a "
                f"non-empty string. Received: prefix={prefix!r}"
            )
        self.update_freq = update_freq
        self.window = window
        self.dead_code_window = dead_code_window
        self.layers = None if layers is None else list(layers)
        self.per_group = per_group
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.prefix = prefix
        self._watched = []
        self._chunks = {}
        self._latest = {}
        self._writer = None
        # Host-side records of every read, for plots after training.
        self.steps = []
        self.values = collections.defaultdict(list)
        self.histograms = {}

    # Setup and teardown.

    def _resolve_layers(self):
        found = codes_layers(self.model)
        if self.layers is None:
            if not found:
                raise ValueError(
                    f"CodeUsage found no layer with discrete codes in model "
                    f"{self.model.name!r}. Add a GumbelSoftmax, GumbelSigmoid, "
                    "GumbelVectorQuantizer or other layer with a `discrete_codes` "
                    "method, or pass `layers=`."
                )
            return found
        chosen = []
        for item in self.layers:
            if isinstance(item, keras.layers.Layer):
                matches = [(p, lay) for p, lay in found if lay is item]
                if not matches and has_discrete_codes(item):
                    matches = [(item.name, item)]
            else:
                matches = [(p, lay) for p, lay in found if item in (p, lay.name)]
            if len(matches) != 1:
                label = getattr(item, "name", item)
                raise ValueError(
                    f"CodeUsage received layers={self.layers!r}: {label!r} matches "
                    f"{len(matches)} codes layers of model {self.model.name!r}; its codes "
                    f"layers are {[p for p, _ in found]}."
                )
            chosen.append(matches[0])
        return chosen

    def _layout(self, layer, path):
        build = layer.get_build_config() if layer.built else None
        shape = (build or {}).get("input_shape")
        if shape is None:
            raise ValueError(
                f"CodeUsage needs layer {path!r} to be built on a single input "
                "before training (call the model once, or build it)."
            )
        # Two probes with different sizes on the unknown axes: the axes of
        # the codes that follow them are positions, not groups.
        shapes = [
            tuple(
                layer.discrete_codes(
                    ops.zeros(tuple(fill if size is None else size for size in shape))
                )["one_hot"].shape
            )
            for fill in (1, 2)
        ]
        symbolic = [a if a == b else None for a, b in zip(*shapes, strict=True)]
        return _group_layout(symbolic, getattr(layer, "codes_group_rank", None))

    def on_train_begin(self, logs=None):
        self._detach_all()
        watched = self._resolve_layers()
        strategy = getattr(self.model, "distribute_strategy", None)
        self._replicas = int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
        self._watched = []
        for path, layer in watched:
            num_groups, num_codes = self._layout(layer, path)
            # Under a TensorFlow distribution strategy, the counts must be
            # created in its scope, as the model's variables were.
            scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
            with scope:
                counter = _CodeCounter(num_groups, num_codes, name=f"{layer.name}_code_usage")
            _attach(layer, counter)
            self._watched.append((path, layer, counter))
            self._chunks[path] = collections.deque()
        self._several = len(self._watched) > 1
        self._step = 0
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            self._step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self._since_read = 0
        self._last_batch = -1
        self._latest = {}
        self._open_writer()
        # Keras makes the train function before `on_train_begin` but traces
        # it at the first step; rebuilding it here makes a reused one (from
        # an earlier `fit`) trace again, now with the counting.
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        self._detach_all()
        self.model.make_train_function(force=True)
        if self._writer is not None:
            self._writer.flush()

    def _detach_all(self):
        for _, layer, _ in self._watched:
            _detach(layer)
        self._watched = []

    def _open_writer(self):
        self._writer = None
        if self.log_dir is None:
            return
        try:
            import tensorflow as tf
        except ImportError:
            warnings.warn(
                "CodeUsage: TensorFlow is not installed, so nothing is written to "
                f"log_dir={self.log_dir!r}; the values still go into the logs.",
                stacklevel=2,
            )
            return
        self._tf = tf
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "code_usage"))

    # Reading.

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = -1

    def on_train_batch_end(self, batch, logs=None):
        steps = batch - self._last_batch
        self._last_batch = batch
        self._step += steps
        self._since_read += steps
        if self._since_read >= self.update_freq:
            self._read()
        if logs is not None:
            logs.update(self._latest)

    def on_epoch_end(self, epoch, logs=None):
        if self._since_read:
            self._read()
        if logs is not None:
            logs.update(self._latest)

    def _key(self, path, name):
        if self._several:
            return f"{self.prefix}/{path}/{name}"
        return f"{self.prefix}/{name}"

    @staticmethod
    def _window_sum(chunks, steps):
        total, covered = None, 0
        for chunk_steps, counts in reversed(chunks):
            total = counts if total is None else total + counts
            covered += chunk_steps
            if covered >= steps:
                break
        return total

    def _read(self):
        # On JAX, `self.model` first writes the jitted train state back into
        # the variables, so the counts are current and the reset sticks.
        self.model  # noqa: B018
        dead_window = self.dead_code_window or self.window
        keep = max(self.window, dead_window)
        latest = {}
        for path, _, counter in self._watched:
            counts = np.asarray(keras.ops.convert_to_numpy(counter.counts), np.float64)
            counts = np.round(counts * self._replicas)
            counter.counts.assign(np.zeros(counts.shape, np.float32))
            chunks = self._chunks[path]
            chunks.append((self._since_read, counts))
            while len(chunks) > 1 and sum(s for s, _ in list(chunks)[1:]) >= keep:
                chunks.popleft()
            usage = self._window_sum(chunks, self.window)
            recent = self._window_sum(chunks, dead_window)
            perplexity = _perplexity(usage)
            dead = np.sum(recent == 0, axis=-1)
            self.histograms[path] = usage
            latest[self._key(path, "perplexity")] = float(perplexity.sum())
            latest[self._key(path, "dead_codes")] = int(dead.sum())
            if self.per_group:
                for group in range(len(perplexity)):
                    latest[self._key(path, f"perplexity/group_{group}")] = float(perplexity[group])
                    latest[self._key(path, f"dead_codes/group_{group}")] = int(dead[group])
        self._since_read = 0
        self._latest = latest
        self.steps.append(self._step)
        for key, value in latest.items():
            self.values[key].append(value)
        self._write_summaries(latest)

    def _write_summaries(self, latest):
        if self._writer is None:
            return
        tf = self._tf
        from tensorboard.plugins.histogram import metadata as histogram_metadata

        with self._writer.as_default(step=self._step):
            for key, value in latest.items():
                tf.summary.scalar(key, value)
            for path, usage in self.histograms.items():
                num_codes = usage.shape[-1]
                edges = np.arange(num_codes + 1, dtype=np.float64)
                for group, counts in enumerate(usage):
                    # The histogram plugin's own format, one bucket [k, k + 1)
                    # per code holding its exact count: `tf.summary.histogram`
                    # would re-bin samples instead.
                    buckets = np.stack([edges[:-1], edges[1:], counts], axis=-1)
                    tag = self._key(path, f"usage/group_{group}")
                    tf.summary.write(
                        tag,
                        tf.constant(buckets, tf.float64),
                        metadata=histogram_metadata.create_summary_metadata(
                            display_name=tag, description="code usage counts"
                        ),
                    )
        self._writer.flush()
