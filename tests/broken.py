"""Broken implementations the suite must catch.

Each is the reference with one realistic bug.  ``CATCHES`` maps each to the claims that
must fail for it; ``tests/test_broken.py`` runs the specs on all of them and checks.
"""

from __future__ import annotations

import numpy as np

from conformance import reference as ref
from conformance.cases import DenseLayer, RNNLayer
from conformance.implementations.reference import ReferenceImplementation


def _permute_lstm_blocks(w: dict, order) -> dict:
    """Reorder the four gate blocks of every LSTM weight (the last axis)."""
    out = {}
    for k, v in w.items():
        blocks = np.split(np.asarray(v), 4, axis=-1)
        out[k] = np.concatenate([blocks[i] for i in order], axis=-1)
    return out


class _Broken(ReferenceImplementation):
    def __init__(self):
        self.name = type(self).__name__


# --------------------------------------------------------------------------- one-hot


class TransposedOneHot(_Broken):
    """Puts the vocabulary axis first instead of last."""

    def one_hot(self, ids, depth):
        return np.moveaxis(ref.one_hot(ids, depth), -1, 0)


class SmoothedOneHot(_Broken):
    """Label smoothing left on: 0.9 at the word, the rest spread over the others."""

    def one_hot(self, ids, depth):
        oh = ref.one_hot(ids, depth)
        if depth < 2:
            return oh
        return oh * 0.9 + (1 - oh) * (0.1 / (depth - 1))


class WrappingOneHot(_Broken):
    """Indexes an identity matrix, so negative ids wrap and large ones raise."""

    def one_hot(self, ids, depth):
        return np.eye(depth)[np.asarray(ids)]


# --------------------------------------------------------------------------- dense


class DenseWithBias(_Broken):
    """The bias-free Dense adds a bias anyway (and owns one)."""

    def dense(self, layer, weights, x):
        return super().dense(layer, weights, x) + 0.5

    def initial_weights(self, layer, input_dim, seed):
        w = super().initial_weights(layer, input_dim, seed)
        if isinstance(layer, DenseLayer) and "bias" not in w:
            w["bias"] = np.zeros(layer.units)
        return w


# --------------------------------------------------------------------------- embedding


class ShiftedEmbedding(_Broken):
    """Reads the next row of the table (off by one in the vocabulary)."""

    def embedding(self, layer, weights, ids):
        table = np.asarray(weights["embeddings"], dtype=np.float64)
        return table[(np.asarray(ids) + 1) % table.shape[0]]


class TransposedEmbeddingTable(_Broken):
    """Stores its table as (output_dim, input_dim)."""

    def initial_weights(self, layer, input_dim, seed):
        w = super().initial_weights(layer, input_dim, seed)
        if "embeddings" in w:
            w["embeddings"] = w["embeddings"].T
        return w


class FlatEmbedding(_Broken):
    """Flattens the batch: (batch * seq, dim) instead of (batch, seq, dim)."""

    def embedding(self, layer, weights, ids):
        out = super().embedding(layer, weights, ids)
        return out.reshape(-1, out.shape[-1])


class PositionalEmbedding(_Broken):
    """Adds a position-dependent offset, so a word's vector depends on where it stands."""

    def embedding(self, layer, weights, ids):
        out = super().embedding(layer, weights, ids)
        if out.ndim >= 2:
            out = out + 0.01 * np.arange(out.shape[-2])[:, None]
        return out


class OffsetEmbedding(_Broken):
    """Adds a constant to every vector (so cosine is no longer scale-invariant)."""

    def embedding(self, layer, weights, ids):
        return super().embedding(layer, weights, ids) + 0.25


class DoubledGradients(_Broken):
    """Every gradient is scaled by 2."""

    def embedding_vjp(self, layer, weights, ids, upstream):
        g = super().embedding_vjp(layer, weights, ids, upstream)
        return {"embeddings": 2 * g["embeddings"], "ids": None}

    def dense_vjp(self, layer, weights, x, upstream):
        return {k: 2 * v for k, v in super().dense_vjp(layer, weights, x, upstream).items()}

    def rnn_vjp(self, layer, weights, x, upstream, **kw):
        g = super().rnn_vjp(layer, weights, x, upstream, **kw)
        return {k: (tuple(2 * s for s in v) if isinstance(v, tuple) else 2 * v)
                for k, v in g.items()}


class LeakyIdGradient(_Broken):
    """Reports a gradient for the integer ids."""

    def embedding_vjp(self, layer, weights, ids, upstream):
        g = super().embedding_vjp(layer, weights, ids, upstream)
        g["ids"] = np.asarray(upstream, dtype=np.float64).sum(-1)
        return g


class WrappingEmbedding(_Broken):
    """Wraps negative ids NumPy-style and clips large ones instead of raising."""

    def embedding(self, layer, weights, ids):
        table = np.asarray(weights["embeddings"], dtype=np.float64)
        ids = np.asarray(ids)
        return table[np.clip(np.where(ids < 0, ids + table.shape[0], ids), 0,
                             table.shape[0] - 1)]


class IgnoredMaskZero(_Broken):
    """mask_zero=True produces no mask."""

    def embedding_mask(self, layer, ids):
        return None


# --------------------------------------------------------------------------- recurrent


class NoRecurrentTerm(_Broken):
    """Drops h_(t-1) recurrent_kernel from the recurrence."""

    def _weights(self, layer, weights):
        w = super()._weights(layer, weights)
        w["recurrent_kernel"] = np.zeros_like(np.asarray(w["recurrent_kernel"], dtype=float))
        return w


class SwappedLSTMGates(_Broken):
    """Reads the LSTM gate blocks as i, c, f, o instead of i, f, c, o."""

    def _weights(self, layer, weights):
        w = super()._weights(layer, weights)
        return _permute_lstm_blocks(w, (0, 2, 1, 3)) if layer.cell == "lstm" else w


class OffByOneInTime(_Broken):
    """Emits the state from before each step: the outputs lag the input by one step."""

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        seq_layer = layer.replace(return_sequences=True, return_state=True)
        outs = super().rnn(seq_layer, weights, x, initial_state=initial_state, mask=mask)
        seq = outs[0]
        h0 = np.zeros_like(seq[:, :1]) if initial_state is None else \
            np.asarray(initial_state[0])[:, None]
        lagged = np.concatenate([h0, seq[:, :-1]], axis=1)
        first = lagged if layer.return_sequences else lagged[:, -1]
        return [first] + (outs[1:] if layer.return_state else [])


class WrongRank(_Broken):
    """Keeps a length-1 time axis when return_sequences=False."""

    def rnn(self, layer, weights, x, **kw):
        outs = super().rnn(layer, weights, x, **kw)
        if not layer.return_sequences:
            outs[0] = outs[0][:, None, :]
        return outs


class FirstStepOutput(_Broken):
    """Without return_sequences, returns the first step's output instead of the last."""

    def rnn(self, layer, weights, x, **kw):
        seq = super().rnn(layer.replace(return_sequences=True), weights, x, **kw)
        if not layer.return_sequences:
            seq[0] = seq[0][:, 0]
        return seq


class PeekingRNN(_Broken):
    """Adds the mean of the whole sequence to every step's input (not causal)."""

    def rnn(self, layer, weights, x, **kw):
        x = np.asarray(x, dtype=np.float64)
        return super().rnn(layer, weights, x + x.mean(axis=1, keepdims=True), **kw)


class SortedSteps(_Broken):
    """Sorts the time steps before reading them, so the order is lost."""

    def rnn(self, layer, weights, x, **kw):
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x.sum(-1), axis=1, kind="stable")
        return super().rnn(layer, weights, np.take_along_axis(x, order[..., None], 1), **kw)


class BiasAlwaysOwned(_Broken):
    """A recurrent layer owns a bias even with use_bias=False."""

    def initial_weights(self, layer, input_dim, seed):
        w = super().initial_weights(layer, input_dim, seed)
        if isinstance(layer, RNNLayer) and "bias" not in w:
            w["bias"] = np.zeros(np.shape(w["recurrent_kernel"])[1])
        return w


class LinearIdentityRNN(_Broken):
    """A SimpleRNN without tanh, initialised with an identity recurrent kernel: nothing
    fades, so gradients reach early steps undiminished."""

    def initial_weights(self, layer, input_dim, seed):
        w = super().initial_weights(layer, input_dim, seed)
        if isinstance(layer, RNNLayer) and layer.cell == "simple_rnn":
            w["recurrent_kernel"] = np.eye(layer.units)
        return w

    def rnn_vjp(self, layer, weights, x, upstream, **kw):
        if layer.cell != "simple_rnn":
            return super().rnn_vjp(layer, weights, x, upstream, **kw)
        # linear recurrence: d h_T / d x_t = kernel^T (recurrent^T)^(T-1-t) applied upstream
        x = np.asarray(x, dtype=np.float64)
        k = np.asarray(weights["kernel"], dtype=np.float64)
        r = np.asarray(weights["recurrent_kernel"], dtype=np.float64)
        g = np.asarray(upstream[0], dtype=np.float64)
        dx = np.zeros_like(x)
        for t in reversed(range(x.shape[1])):
            dx[:, t] = g @ k.T
            g = g @ r.T
        return {"x": dx}


class NoForgetLSTM(_Broken):
    """An LSTM whose forget gate is stuck shut (c_t = i g): no memory across steps."""

    def _weights(self, layer, weights):
        w = {k: np.array(v, dtype=np.float64) for k, v in super()._weights(layer, weights).items()}
        if layer.cell == "lstm":
            u = layer.units
            w["kernel"][:, u:2 * u] = 0
            w["recurrent_kernel"][:, u:2 * u] = 0
            if "bias" in w:
                w["bias"][u:2 * u] = -1e4
            else:
                raise AssertionError("NoForgetLSTM needs a bias")
        return w


class StatesSwapped(_Broken):
    """return_state gives [output, c_T, h_T] for an LSTM."""

    def rnn(self, layer, weights, x, **kw):
        outs = super().rnn(layer, weights, x, **kw)
        if layer.cell == "lstm" and layer.return_state:
            outs[1], outs[2] = outs[2], outs[1]
        return outs


class NoUnitForgetBias(_Broken):
    """Initialises the LSTM bias with zeros everywhere (unit_forget_bias ignored)."""

    def initial_weights(self, layer, input_dim, seed):
        w = super().initial_weights(layer, input_dim, seed)
        if isinstance(layer, RNNLayer) and layer.cell == "lstm" and "bias" in w:
            w["bias"] = np.zeros_like(w["bias"])
        return w


CATCHES = {
    "TransposedOneHot": {"onehot.shape"},
    "SmoothedOneHot": {"onehot.exactly_one", "onehot.no_similarity"},
    "WrappingOneHot": {"onehot.out_of_range"},
    "DenseWithBias": {"dense.kernel_shape", "dense.onehot_selects_rows",
                      "embedding.equals_onehot_dense"},
    "ShiftedEmbedding": {"embedding.lookup", "embedding.equals_onehot_dense"},
    "TransposedEmbeddingTable": {"embedding.weight_shape"},
    "FlatEmbedding": {"embedding.output_shape"},
    "PositionalEmbedding": {"embedding.same_word_same_vector", "rnn.order_matters"},
    "OffsetEmbedding": {"embedding.lookup", "embedding.equals_onehot_dense"},
    "DoubledGradients": {"embedding.weight_gradient", "rnn.vanishing_gradient_bound"},
    "LeakyIdGradient": {"embedding.no_input_gradient"},
    "WrappingEmbedding": {"embedding.invalid_ids"},
    "IgnoredMaskZero": {"embedding.mask_zero"},
    "NoRecurrentTerm": {"rnn.recurrence", "lstm.recurrence"},
    "SwappedLSTMGates": {"lstm.recurrence", "lstm.weight_shapes"},
    "OffByOneInTime": {"rnn.recurrence", "lstm.recurrence"},
    "WrongRank": {"rnn.return_sequences_rank"},
    "FirstStepOutput": {"rnn.last_step"},
    "PeekingRNN": {"rnn.causal"},
    "SortedSteps": {"rnn.order_matters"},
    "BiasAlwaysOwned": {"rnn.weight_shapes"},
    "LinearIdentityRNN": {"rnn.vanishing_gradient_decay"},
    "NoForgetLSTM": {"lstm.gradient_persists", "lstm.recurrence"},
    "StatesSwapped": {"lstm.return_state"},
    "NoUnitForgetBias": {"lstm.unit_forget_bias"},
}


# --------------------------------------------------------------------------- added claims


class GradientMissingFirstStep(_Broken):
    """Backpropagation through time that stops before the first step's input."""

    def rnn_vjp(self, layer, weights, x, upstream, **kw):
        g = super().rnn_vjp(layer, weights, x, upstream, **kw)
        g["x"] = g["x"].copy()
        g["x"][:, 0] = 0.0
        return g


class SwappedGRUGates(_Broken):
    """Reads the GRU blocks as r, z, h (torch's order) instead of z, r, h."""

    def _weights(self, layer, weights):
        w = super()._weights(layer, weights)
        if layer.cell != "gru":
            return w
        out = {}
        for k, v in w.items():
            z, r, h = np.split(np.asarray(v, dtype=np.float64), 3, axis=-1)
            out[k] = np.concatenate([r, z, h], axis=-1)
        return out


class OtherResetConvention(_Broken):
    """A GRU that always applies the reset gate before the recurrent product."""

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        if layer.cell != "gru" or not layer.reset_after:
            return super().rnn(layer, weights, x, initial_state=initial_state, mask=mask)
        w = dict(self._weights(layer, weights))
        if "bias" in w:
            w["bias"] = np.asarray(w["bias"], dtype=np.float64).sum(axis=0)
        res = ref.rnn("gru", x, w, initial_state=initial_state, mask=mask,
                      return_sequences=layer.return_sequences, reset_after=False)
        return [res.output] + (list(res.states) if layer.return_state else [])


class DotProductCosine(_Broken):
    """Forgets to normalise: returns the dot product."""

    def cosine_similarity(self, a, b):
        return (np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)).sum(-1)


class FloatMask(_Broken):
    """Hands on a float mask (1.0 / 0.0) instead of a boolean one."""

    def embedding_mask(self, layer, ids):
        m = super().embedding_mask(layer, ids)
        return None if m is None else m.astype(np.float32)


CATCHES.update({
    "DoubledGradients": CATCHES["DoubledGradients"] | {"rnn.gradients"},
    "GradientMissingFirstStep": {"rnn.gradients"},
    "SwappedGRUGates": {"gru.recurrence", "gru.weight_shapes"},
    "OtherResetConvention": {"gru.recurrence"},
    "DotProductCosine": {"similarity.cosine"},
    "FloatMask": {"embedding.mask_zero"},
})


# --------------------------------------------------------------------------- shared options


class StateAsSequence(_Broken):
    """return_state hands back the whole sequence instead of the final state."""

    def rnn(self, layer, weights, x, **kw):
        outs = super().rnn(layer, weights, x, **kw)
        if layer.return_state:
            seq = super().rnn(layer.replace(return_sequences=True, return_state=False),
                              weights, x, **kw)[0]
            outs[1] = seq
        return outs


class BackwardsReReversed(_Broken):
    """go_backwards reverses its output back to input order."""

    def rnn(self, layer, weights, x, **kw):
        outs = super().rnn(layer, weights, x, **kw)
        if layer.go_backwards and layer.return_sequences:
            outs[0] = outs[0][:, ::-1]
        return outs


class IgnoresInitialState(_Broken):
    """Always starts from zeros."""

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        return super().rnn(layer, weights, x, mask=mask)


class MixesTheBatch(_Broken):
    """Normalises the input over the batch (a batch statistic leaks between samples)."""

    def rnn(self, layer, weights, x, **kw):
        x = np.asarray(x, dtype=np.float64)
        return super().rnn(layer, weights, x - 0.5 * x.mean(axis=0, keepdims=True), **kw)


class UnrolledDiffers(_Broken):
    """The unrolled path forgets the bias."""

    def rnn(self, layer, weights, x, **kw):
        if layer.unroll and "bias" in weights:
            weights = {k: v for k, v in weights.items() if k != "bias"}
            layer = layer.replace(use_bias=False)
        return super().rnn(layer, weights, x, **kw)


class DropoutAtInference(_Broken):
    """Applies input dropout even outside training."""

    def rnn(self, layer, weights, x, **kw):
        if layer.dropout:
            keep = np.random.default_rng(0).random(np.shape(x)) >= layer.dropout
            x = np.asarray(x, dtype=np.float64) * keep / (1 - layer.dropout)
        return super().rnn(layer, weights, x, **kw)


CATCHES.update({
    "StateAsSequence": {"rnn.return_state"},
    "BackwardsReReversed": {"rnn.go_backwards"},
    "IgnoresInitialState": {"rnn.initial_state", "rnn.recurrence"},
    "MixesTheBatch": {"rnn.batch_independence"},
    "UnrolledDiffers": {"rnn.unroll"},
    "DropoutAtInference": {"rnn.dropout_inference"},
})


class IgnoresMask(_Broken):
    """Runs every step whatever the mask says."""

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        return super().rnn(layer, weights, x, initial_state=initial_state)


class MaskOnOutputOnly(_Broken):
    """Repeats the previous output at masked steps but lets the state run on."""

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        outs = super().rnn(layer, weights, x, initial_state=initial_state)
        if mask is None:
            return outs
        masked = super().rnn(layer, weights, x, initial_state=initial_state, mask=mask)
        return [masked[0]] + outs[1:]


class EmptyGivesNaN(_Broken):
    """A zero-length sequence returns NaN states instead of the initial state."""

    def rnn(self, layer, weights, x, **kw):
        outs = super().rnn(layer, weights, x, **kw)
        if np.shape(x)[1] == 0:
            outs = [np.full_like(o, np.nan) for o in outs]
        return outs


CATCHES.update({
    "IgnoresMask": {"rnn.mask"},
    "MaskOnOutputOnly": {"rnn.mask"},
    "EmptyGivesNaN": {"rnn.empty_input"},
})


# --------------------------------------------------------------------------- state, compiled
# calls, dtypes, rebuilding


class StatefulNeverResets(_Broken):
    """A stateful layer whose reset does nothing: the states run on."""

    def rnn_stateful(self, layer, weights, calls):
        return super().rnn_stateful(layer, weights, [c for c in calls if c is not None])


class CompiledIgnoresMask(_Broken):
    """Its compiled path (like a fused kernel taken without checking) drops the mask."""

    def compiled_modes(self):
        return ("fused",)

    def rnn_compiled(self, mode, layer, weights, x, *, initial_state=None, mask=None):
        return self.rnn(layer, weights, x, initial_state=initial_state)


class DtypeIgnored(_Broken):
    """Computes in float32 whatever dtype the layer asks for."""

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        if layer.dtype is None:
            return super().rnn(layer, weights, x, initial_state=initial_state, mask=mask)
        f32 = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        outs = super().rnn(layer.replace(dtype=None), f32, np.asarray(x, dtype=np.float32),
                           initial_state=initial_state, mask=mask)
        return [np.asarray(o, dtype=np.float32) for o in outs]


class RebuildLosesGoBackwards(_Broken):
    """Its configuration does not record go_backwards, so a rebuilt layer reads forwards."""

    def roundtrip_modes(self):
        return ("config",)

    def roundtrip(self, via, layer, weights, inputs):
        if isinstance(layer, RNNLayer):
            return self.rnn(layer.replace(go_backwards=False), weights, inputs)
        if isinstance(layer, DenseLayer):
            return self.dense(layer, weights, inputs)
        return self.embedding(layer, weights, inputs)


class CompiledMaskAsLengths(_Broken):
    """Its compiled path reads the mask as lengths (each row's count of unmasked steps), as
    a fused kernel for right-padded batches does: right padding comes out right, gaps and
    leading masked steps do not."""

    def compiled_modes(self):
        return ("fused",)

    def rnn_compiled(self, mode, layer, weights, x, *, initial_state=None, mask=None):
        if mask is not None:
            lengths = np.asarray(mask, dtype=bool).sum(axis=1)
            mask = np.arange(np.shape(x)[1])[None, :] < lengths[:, None]
        return self.rnn(layer, weights, x, initial_state=initial_state, mask=mask)


class StatefulFirstStatesZero(_Broken):
    """Gives the right sequences, but reports zero final states for a call that starts
    from a reset layer."""

    def rnn_stateful(self, layer, weights, calls):
        results, n, fresh = list(super().rnn_stateful(layer, weights, calls)), 0, True
        for c in calls:
            if c is None:
                fresh = True
                continue
            if fresh:
                results[n] = [results[n][0]] + [np.zeros_like(np.asarray(s))
                                                for s in results[n][1:]]
            n, fresh = n + 1, False
        return results


class EmptyOutputNaN(_Broken):
    """With zero steps the final states are right, but the last output is NaN."""

    def rnn(self, layer, weights, x, **kw):
        outs = super().rnn(layer, weights, x, **kw)
        if np.shape(x)[1] == 0 and not layer.return_sequences:
            outs[0] = np.full_like(np.asarray(outs[0], dtype=np.float64), np.nan)
        return outs


CATCHES.update({
    "CompiledMaskAsLengths": {"rnn.compiled_equals_eager"},
    "StatefulFirstStatesZero": {"rnn.stateful"},
    "EmptyOutputNaN": {"rnn.empty_input"},
    "StatefulNeverResets": {"rnn.stateful"},
    "CompiledIgnoresMask": {"rnn.compiled_equals_eager"},
    "DtypeIgnored": {"rnn.dtype"},
    "RebuildLosesGoBackwards": {"layer.config_roundtrip"},
})


# --------------------------------------------------------------------------- versions


class ErrorClassChanged(_Broken):
    """After an "upgrade", invalid ids raise RuntimeError instead of the error class they
    raised before: every claim still holds (an error is an error), but a caller's ``except``
    clause no longer catches it.  Only a comparison with a recording made before
    (``version.golden``) sees it."""

    def embedding(self, layer, weights, ids):
        try:
            return super().embedding(layer, weights, ids)
        except ref.InvalidIds as exc:
            raise RuntimeError(str(exc)) from None


CATCHES.update({
    "ErrorClassChanged": {"version.golden"},
})

CATCHES["GradientMissingFirstStep"] = {"rnn.gradients", "lstm.gradient_persists"}

# Bugs confined to one option or path: nothing but the claims CATCHES names may catch them,
# so that each of those claims is shown to be what guards its option (a gate or recurrence
# bug, by contrast, rightly fails every claim that compares numbers).  version.golden
# compares every golden case with a recording made before, so it may catch any of them too.
TARGETED = {
    "BackwardsReReversed", "CompiledIgnoresMask", "DropoutAtInference", "DtypeIgnored",
    "EmptyGivesNaN", "ErrorClassChanged", "GradientMissingFirstStep", "IgnoresMask",
    "MaskOnOutputOnly", "RebuildLosesGoBackwards", "StatefulNeverResets", "UnrolledDiffers",
    "BiasAlwaysOwned", "DenseWithBias", "DotProductCosine", "DoubledGradients", "FloatMask",
    "IgnoredMaskZero", "LeakyIdGradient", "TransposedEmbeddingTable", "WrappingEmbedding",
    "WrappingOneHot", "CompiledMaskAsLengths", "StatefulFirstStatesZero", "EmptyOutputNaN",
}
ANYWHERE = {"version.golden"}
