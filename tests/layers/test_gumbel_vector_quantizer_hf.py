"""GumbelVectorQuantizer against Hugging Face's Wav2Vec2GumbelVectorQuantizer.

Needs PyTorch and transformers (`pip install -e .[hf]`); skipped without
them. The PyTorch module's weights are copied into the Keras layer:

    kernel      = weight_proj.weight.T    (D, G * V)   nn.Linear stores (out, in)
    bias        = weight_proj.bias        (G * V,)
    codevectors = codevectors[0]          (G * V, C // G)

and HF's `mask_time_indices` (True = the step counts) is passed as the Keras
mask. In eval mode both compute in float32 from the same weights, so the
codes must be identical, the outputs (exact copies of code vectors) equal,
and the perplexities equal to float32 rounding.
"""

import keras
import numpy as np
import pytest
from testing import to_numpy

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers import GumbelVectorQuantizer

_NEEDS_HF = "the comparison needs the `hf` extra (torch, transformers): pip install -e '.[hf]'"
torch = pytest.importorskip("torch", reason=_NEEDS_HF)
transformers = pytest.importorskip("transformers", reason=_NEEDS_HF)
wav2vec2 = pytest.importorskip("transformers.models.wav2vec2.modeling_wav2vec2", reason=_NEEDS_HF)

# (G, V, D, C): wav2vec 2.0 base's sizes first, then smaller and odd ones.
CONFIGS = [(2, 320, 512, 256), (1, 16, 8, 4), (4, 32, 64, 64), (3, 7, 10, 6)]
BATCH, STEPS = 3, 40


def _hf_module(num_groups, num_vars, input_dim, codevector_dim, seed):
    config = transformers.Wav2Vec2Config(
        conv_dim=(input_dim,),
        conv_stride=(1,),
        conv_kernel=(1,),
        num_codevector_groups=num_groups,
        num_codevectors_per_group=num_vars,
        codevector_dim=codevector_dim,
    )
    torch.manual_seed(seed)
    module = wav2vec2.Wav2Vec2GumbelVectorQuantizer(config)
    # wav2vec 2.0's initialization (the module leaves its codebook unset).
    with torch.no_grad():
        module.weight_proj.weight.normal_(0.0, 1.0)
        module.weight_proj.bias.normal_(0.0, 0.1)
        module.codevectors.uniform_()
    return module


def _keras_layer(module, num_groups, num_vars, codevector_dim):
    layer = GumbelVectorQuantizer(num_groups, num_vars, codevector_dim, diversity_weight=1.0)
    layer.build((None, None, module.weight_proj.in_features))
    weights = [
        module.weight_proj.weight.detach().numpy().T,
        module.weight_proj.bias.detach().numpy(),
        module.codevectors.detach().numpy()[0],
    ]
    for variable, value in zip(layer.trainable_weights, weights, strict=True):
        variable.assign(value)
    return layer


def _inputs(input_dim, masked, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, STEPS, input_dim)).astype("float32")
    mask = rng.uniform(size=(BATCH, STEPS)) < 0.6 if masked else None
    return x, mask


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("sizes", CONFIGS, ids=lambda s: "G{}-V{}-D{}-C{}".format(*s))
def test_eval_outputs_codes_and_perplexity_equal_hugging_face(sizes, masked):
    num_groups, num_vars, input_dim, codevector_dim = sizes
    module = _hf_module(*sizes, seed=0).eval()
    layer = _keras_layer(module, num_groups, num_vars, codevector_dim)
    x, mask = _inputs(input_dim, masked, seed=1)
    hf_mask = None if mask is None else torch.from_numpy(mask)
    with torch.no_grad():
        hf_out, hf_perplexity = module(torch.from_numpy(x), mask_time_indices=hf_mask)
        hf_logits = module.weight_proj(torch.from_numpy(x))
    hf_codes = hf_logits.view(BATCH, STEPS, num_groups, num_vars).argmax(-1).numpy()

    out = to_numpy(layer(x, training=False, mask=mask))
    codes = layer.discrete_codes(x, mask=mask)
    perplexity = float(to_numpy(gumbel_ops.codebook_perplexity(codes["one_hot"], mask)))
    (loss,) = layer.losses

    np.testing.assert_array_equal(to_numpy(codes["codes"]), hf_codes)
    np.testing.assert_array_equal(out, hf_out.numpy())
    np.testing.assert_allclose(
        to_numpy(layer.group_logits(x)).reshape(hf_logits.shape),
        hf_logits.numpy(),
        rtol=1e-5,
        atol=1e-4,
    )
    # float32 rounding of a sum of G exponentials of entropies.
    np.testing.assert_allclose(perplexity, float(hf_perplexity), rtol=1e-6)
    total = num_groups * num_vars
    np.testing.assert_allclose(
        float(to_numpy(loss)), (total - float(hf_perplexity)) / total, atol=1e-6
    )
    assert len(np.unique(hf_codes)) > 1  # not a degenerate all-one-code case


@pytest.mark.parametrize("masked", [False, True])
def test_training_perplexity_equals_hugging_face(masked):
    # In training the perplexity is that of softmax(logits), noise-free, so
    # it is comparable although the sampled outputs are not.
    sizes = (2, 64, 32, 16)
    module = _hf_module(*sizes, seed=2).train()
    layer = _keras_layer(module, *sizes[:2], sizes[3])
    x, mask = _inputs(sizes[2], masked, seed=3)
    hf_mask = None if mask is None else torch.from_numpy(mask)
    with torch.no_grad():
        _, hf_perplexity = module(torch.from_numpy(x), mask_time_indices=hf_mask)
    layer(x, training=True, mask=mask)
    (loss,) = layer.losses
    perplexity = 128 * (1 - float(to_numpy(loss)))
    np.testing.assert_allclose(perplexity, float(hf_perplexity), rtol=1e-5)


def test_training_outputs_are_code_vectors_like_hugging_faces():
    sizes = (2, 16, 8, 6)
    module = _hf_module(*sizes, seed=4).train()
    layer = _keras_layer(module, *sizes[:2], sizes[3])
    x, _ = _inputs(8, False, seed=5)
    with torch.no_grad():
        hf_out, _ = module(torch.from_numpy(x))
    out = to_numpy(layer(x, training=True))
    table = module.codevectors.detach().numpy()[0].reshape(2, 16, 3)
    for sample in (hf_out.numpy(), out):
        groups = sample.reshape(-1, 2, 3)
        for g in range(2):
            matches = np.all(groups[:, g, None, :] == table[g][None], axis=-1).sum(-1)
            np.testing.assert_array_equal(matches, 1)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
