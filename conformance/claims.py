"""The claim registry and the decorator that ties a property to a claim id.

Ids are stable keys of reports, expectation files and golden files: never rename or reuse
one; add a new id when a claim needs splitting.  Each claim is stated in this project's own
words; ``source`` says where it comes from (a section of the seed tutorial, or the Keras
argument or behaviour it concerns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

KINDS = ("shape", "exact", "numeric", "metamorphic", "error", "statistical", "benchmark")

#: The pytest marker name that carries a claim id.
MARKER = "claim"


@dataclass(frozen=True)
class Claim:
    id: str
    kind: str
    section: str
    source: str
    statement: str

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "section": self.section,
            "source": self.source,
            "statement": self.statement,
        }


SECTIONS = {
    "A": "Representation",
    "B": "A linear layer on one-hot vectors",
    "C": "Embedding",
    "D": "Recurrent layers",
    "E": "LSTM",
    "F": "GRU",
    "G": "Options every recurrent layer shares",
    "H": "Versions and persistence",
}

_SEED_A = "tutorial: 분포 가설과 분산 표현 (distribution hypothesis, distributed representation)"
_SEED_B = "tutorial: the one-hot vector fed to a bias-free Dense (Embedding 레이어 section)"
_SEED_C = "tutorial: Embedding 레이어 section and its example"
_SEED_D = "tutorial: 순차적인 Recurrent 레이어 RNN section and its SimpleRNN example"
_SEED_E = "tutorial: 순차적인 Recurrent 레이어 LSTM (closing heading)"

_TABLE: list[tuple[str, str, str, str, str]] = [
    # id, kind, section, source, statement
    ("onehot.shape", "shape", "A", _SEED_A,
     "Encoding ids of shape S over V words yields an array of shape S + (V,)."),
    ("onehot.exactly_one", "exact", "A", _SEED_A,
     "Every encoded vector is 1 at the word's own index and 0 at every other index."),
    ("onehot.no_similarity", "exact", "A", _SEED_A,
     "Vectors of two different words are orthogonal and every pair of different words lies "
     "sqrt(2) apart, so the encoding says nothing about how words relate."),
    ("onehot.out_of_range", "error", "A", "keras: tf.one_hot / keras.ops.one_hot on ids outside the depth",
     "An id below 0 or at least V encodes as the all-zero vector (what TensorFlow "
     "documents); the report shows what each implementation does."),
    ("similarity.cosine", "numeric", "A", _SEED_A,
     "Cosine similarity of dense word vectors is symmetric, within [-1, 1], equal to 1 for a "
     "nonzero vector and itself, and invariant to multiplying a vector by a positive number."),
    ("distributional.context_similarity", "statistical", "A", _SEED_A,
     "Training an Embedding on a corpus where a group of words shares its contexts makes "
     "words of one group closer to each other than to words of other groups."),
    ("dense.kernel_shape", "shape", "B", _SEED_B,
     "A bias-free Dense with k units on V-wide input owns one weight only, shaped (V, k)."),
    ("dense.onehot_selects_rows", "exact", "B", _SEED_B,
     "A bias-free Dense applied to one_hot(ids) returns kernel[ids] bit for bit."),
    ("embedding.weight_shape", "shape", "C", _SEED_C,
     "Embedding(input_dim, output_dim) owns one weight only, shaped (input_dim, output_dim)."),
    ("embedding.output_shape", "shape", "C", _SEED_C,
     "Ids shaped S give an output shaped S + (output_dim,): (batch, seq) becomes "
     "(batch, seq, output_dim)."),
    ("embedding.lookup", "exact", "C", _SEED_C,
     "The output at every position is the table row of the id at that position."),
    ("embedding.equals_onehot_dense", "exact", "C", _SEED_C,
     "An Embedding gives exactly what a bias-free Dense holding the same matrix gives on "
     "one_hot(ids, input_dim)."),
    ("embedding.same_word_same_vector", "exact", "C", _SEED_C,
     "A word gets the same vector wherever it stands and whatever batch it is in."),
    ("embedding.weight_gradient", "numeric", "C", _SEED_C,
     "The table's gradient adds each upstream row onto the row that was looked up: rows never "
     "looked up get zero, repeated ids accumulate, and it matches the one-hot Dense path."),
    ("embedding.no_input_gradient", "exact", "C", _SEED_C,
     "The ids receive no gradient, so an Embedding cannot be trained through from a computed "
     "float tensor and belongs at the model's input."),
    ("embedding.invalid_ids", "error", "C", "keras: Embedding(input_dim) on ids outside the table",
     "An id outside [0, input_dim), negative ids included, raises an error instead of "
     "returning some row; the report shows what each implementation does."),
    ("embedding.mask_zero", "exact", "C", "keras: Embedding(mask_zero=True)",
     "With mask_zero=True the mask is (ids != 0) and the values do not change: id 0 still "
     "returns row 0."),
    ("rnn.weight_shapes", "shape", "D", _SEED_D,
     "SimpleRNN(units) on F features owns kernel (F, units), recurrent_kernel (units, units) "
     "and, only with use_bias, bias (units,); none of them depends on the sequence length."),
    ("rnn.return_sequences_rank", "shape", "D", _SEED_D,
     "return_sequences=True returns (batch, T, units), rank 3; False returns (batch, units), "
     "rank 2."),
    ("rnn.last_step", "exact", "D", _SEED_D,
     "The output without return_sequences is the last step of the output with it."),
    ("rnn.recurrence", "numeric", "D", _SEED_D,
     "h_t = tanh(x_t kernel + h_(t-1) recurrent_kernel + bias) from h_0 = 0, as in the float64 "
     "reference."),
    ("rnn.causal", "exact", "D", _SEED_D,
     "The output at step t depends on steps 0..t only: editing later steps leaves it as it was."),
    ("rnn.order_matters", "metamorphic", "D", _SEED_D,
     "Reordering the time steps changes a recurrent layer's final output for generic weights, "
     "whereas an Embedding's output is reordered along with its input."),
    ("rnn.vanishing_gradient_bound", "numeric", "D", _SEED_D,
     "For a tanh SimpleRNN, the spectral norm of d h_T / d x_t never exceeds "
     "norm(kernel) * norm(recurrent_kernel)^(T-t): the influence of old steps shrinks "
     "geometrically when the recurrent norm is below 1."),
    ("rnn.vanishing_gradient_decay", "statistical", "D", _SEED_D,
     "With the default initialisation and long sequences, the last output's gradient with "
     "respect to the first steps is orders of magnitude below that for the last steps."),
    ("rnn.sequential_cost", "benchmark", "D", _SEED_D,
     "A recurrent forward pass costs time linear in the sequence length, while an Embedding's "
     "cost per token stays flat."),
    ("lstm.weight_shapes", "shape", "E", _SEED_E,
     "LSTM owns kernel (F, 4u), recurrent_kernel (u, 4u) and bias (4u,), with gate blocks in "
     "the Keras order i, f, c, o."),
    ("lstm.recurrence", "numeric", "E", _SEED_E,
     "Sigmoid input, forget and output gates, a tanh candidate, c_t = f c_(t-1) + i g and "
     "h_t = o tanh(c_t), as in the float64 reference."),
    ("lstm.return_state", "exact", "E", "keras: LSTM(return_state=True)",
     "return_state returns [output, h_T, c_T], and output equals h_T without "
     "return_sequences."),
    ("lstm.unit_forget_bias", "exact", "E", "keras: LSTM(unit_forget_bias=True), the default",
     "The default bias is 1 over the forget-gate block and 0 over the others."),
    ("lstm.gradient_persists", "statistical", "E", _SEED_E,
     "With the default initialisation, an LSTM's gradient fades with distance more slowly "
     "than a SimpleRNN's."),
    ("gru.weight_shapes", "shape", "F", "keras: GRU(reset_after)",
     "GRU owns kernel (F, 3u) and recurrent_kernel (u, 3u); its bias is (2, 3u) with "
     "reset_after=True and (3u,) with reset_after=False; gate blocks are in the order z, r, h."),
    ("gru.recurrence", "numeric", "F", "keras: GRU(reset_after)",
     "Both reset_after conventions match the float64 reference."),
    ("rnn.return_state", "shape", "G", "keras: return_state",
     "return_state appends the final state(s) with the shapes each cell documents."),
    ("rnn.go_backwards", "metamorphic", "G", "keras: go_backwards",
     "go_backwards=True equals running on the time-reversed input; a returned sequence stays "
     "in processing order."),
    ("rnn.initial_state", "numeric", "G", "keras: initial_state",
     "A given initial state replaces the zeros, and two halves with the state handed over "
     "equal one run over the whole."),
    ("rnn.stateful", "metamorphic", "G", "keras: stateful",
     "A stateful layer called on two halves equals one call on the whole; a reset brings back "
     "the zero state."),
    ("rnn.mask", "metamorphic", "G", "keras: mask / Masking",
     "Masked steps carry the previous output and state forward; a right-padded batch with its "
     "mask equals each sequence run alone; a fully masked row returns the initial state."),
    ("rnn.unroll", "numeric", "G", "keras: unroll",
     "unroll=True gives the results of unroll=False."),
    ("rnn.dropout_inference", "exact", "G", "keras: dropout, recurrent_dropout",
     "Dropout and recurrent dropout change nothing outside training."),
    ("rnn.batch_independence", "metamorphic", "G", "keras: batch semantics",
     "A sample's result does not depend on the other samples of its batch."),
    ("rnn.compiled_equals_eager", "numeric", "G", "keras: tf.function / jit_compile",
     "A compiled call (graph, jit, XLA) gives the eager result."),
    ("rnn.dtype", "numeric", "G", "keras: dtype policies",
     "float16, bfloat16 and float64 follow the layer's dtype policy and match the reference "
     "within a tolerance derived from the dtype."),
    ("rnn.gradients", "numeric", "G", "keras: training through recurrent layers",
     "Gradients with respect to inputs, initial state and every weight match the reference "
     "for every cell and option."),
    ("rnn.empty_input", "error", "G", "keras: zero-length sequences, empty batches",
     "Zero-length sequences and empty batches get a clear error or an empty / initial-state "
     "result, never a crash."),
    ("layer.config_roundtrip", "exact", "H", "keras: get_config / from_config, saving",
     "Rebuilding a layer from its config and weights, or saving and loading it, gives "
     "identical outputs."),
    ("version.golden", "numeric", "H", "keras: behaviour across versions",
     "The recorded golden cases give the same results on every TensorFlow/Keras version of "
     "the matrix, or the difference is listed as a known, explained change."),
]

CLAIMS: dict[str, Claim] = {row[0]: Claim(*row) for row in _TABLE}
assert all(c.kind in KINDS for c in CLAIMS.values())


def get(claim_id: str) -> Claim:
    try:
        return CLAIMS[claim_id]
    except KeyError:
        raise KeyError(f"unknown claim id {claim_id!r}; see `conformance list`") from None


F = TypeVar("F", bound=Callable)


def claim(claim_id: str) -> Callable[[F], F]:
    """Tag a test function with the claim it checks (one claim per test).

    The id must exist in the registry; it becomes the pytest marker ``claim(id)`` that the
    plugin reads to record outcomes."""
    get(claim_id)

    def mark(fn: F) -> F:
        import pytest

        return getattr(pytest.mark, MARKER)(claim_id)(fn)

    return mark
