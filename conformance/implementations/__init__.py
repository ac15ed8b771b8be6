"""Implementations under test: the protocol, the registry and name resolution.

An implementation is any object with the methods of :class:`Implementation` (NumPy in,
NumPy out, Keras-layout weights).  Subclassing :class:`Implementation` is optional; it only
supplies defaults that raise :class:`Unsupported`, which the report shows as ``n/a``.

Names accepted wherever an implementation is named (``--impl``):

* a registered name (``conformance list --impls`` shows them);
* ``package.module:attribute``, where the attribute is an implementation object, a class
  (instantiated without arguments) or a function returning an implementation;
* a name published by a third party in the entry-point group ``conformance.implementations``
  whose value is ``package.module:attribute`` as above.

Nothing here imports a framework: adapters are imported when they are loaded.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from ..cases import DenseLayer, EmbeddingLayer, RNNLayer

ENTRY_POINT_GROUP = "conformance.implementations"


@contextlib.contextmanager
def time_limit(seconds: float, on_timeout):
    """Run the block with an alarm: after ``seconds`` the signal handler calls
    ``on_timeout()``, which raises and so ends the block.  No limit when ``seconds`` is 0
    or outside the main thread (signals arrive only there).  Used for calls into
    implementations, which may hang in Python code."""
    if seconds <= 0 or not hasattr(signal, "setitimer") \
            or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: on_timeout())
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Unsupported(Exception):
    """The implementation cannot express this configuration; the report shows n/a."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WouldCrash(Exception):
    """The adapter refused a call that is known to take the whole process down (an abort
    in native code).  Specs report it as the crash it stands for; the run goes on."""


class ImplementationUnavailable(Exception):
    """A named implementation could not be loaded (unknown name, missing framework...)."""


@runtime_checkable
class ImplementationProtocol(Protocol):
    """What the specs call.  Arrays are NumPy; weights are dicts in the Keras layout."""

    name: str

    def versions(self) -> Mapping[str, str]: ...

    def one_hot(self, ids: np.ndarray, depth: int) -> np.ndarray: ...

    def cosine_similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...

    def dense(self, layer: DenseLayer, weights: Mapping, x: np.ndarray) -> np.ndarray: ...

    def dense_vjp(self, layer: DenseLayer, weights: Mapping, x: np.ndarray,
                  upstream: np.ndarray) -> dict: ...

    def embedding(self, layer: EmbeddingLayer, weights: Mapping, ids: np.ndarray
                  ) -> np.ndarray: ...

    def embedding_mask(self, layer: EmbeddingLayer, ids: np.ndarray) -> Optional[np.ndarray]: ...

    def embedding_vjp(self, layer: EmbeddingLayer, weights: Mapping, ids: np.ndarray,
                      upstream: np.ndarray) -> dict: ...

    def rnn(self, layer: RNNLayer, weights: Mapping, x: np.ndarray, *,
            initial_state: Optional[Sequence[np.ndarray]] = None,
            mask: Optional[np.ndarray] = None) -> list[np.ndarray]: ...

    def rnn_vjp(self, layer: RNNLayer, weights: Mapping, x: np.ndarray,
                upstream: Sequence[np.ndarray], *,
                initial_state: Optional[Sequence[np.ndarray]] = None,
                mask: Optional[np.ndarray] = None) -> dict: ...

    def initial_weights(self, layer: Any, input_dim: int, seed: int) -> dict: ...

    def rnn_stateful(self, layer: RNNLayer, weights: Mapping,
                     calls: Sequence[Optional[np.ndarray]]) -> list[list[np.ndarray]]: ...

    def compiled_modes(self) -> Sequence[str]: ...

    def rnn_compiled(self, mode: str, layer: RNNLayer, weights: Mapping, x: np.ndarray, *,
                     initial_state: Optional[Sequence[np.ndarray]] = None,
                     mask: Optional[np.ndarray] = None) -> list[np.ndarray]: ...

    def roundtrip_modes(self) -> Sequence[str]: ...

    def roundtrip(self, via: str, layer: Any, weights: Mapping, inputs: np.ndarray) -> Any: ...


class Implementation:
    """Convenience base class.  Methods an adapter does not override raise Unsupported.

    Contract of each method:

    ``one_hot(ids, depth)``
        ids (any integer shape S) -> float array S + (depth,).
    ``cosine_similarity(a, b)``
        the framework's cosine similarity of a (N, D) and b (N, D), row by row: (N,).
    ``dense(layer, weights, x)`` / ``dense_vjp(layer, weights, x, upstream)``
        weights ``kernel`` (in, units) and, with ``layer.use_bias``, ``bias`` (units,).
        The VJP returns ``{"x", "kernel", "bias"}``: gradients of ``sum(upstream * out)``.
    ``embedding(layer, weights, ids)``
        weights ``embeddings`` (input_dim, output_dim); returns S + (output_dim,).
        Invalid ids may raise any exception: the specs record what happened.
    ``embedding_mask(layer, ids)``
        the mask the layer hands on (bool array shaped like ids) or None.
    ``embedding_vjp(layer, weights, ids, upstream)``
        ``{"embeddings": grad, "ids": None | grad}``; the ids are fed as a float tensor
        where the framework allows it; None means "no gradient path".
    ``rnn(layer, weights, x, initial_state=None, mask=None)``
        x (B, T, F) float; weights ``kernel``, ``recurrent_kernel`` and (with use_bias)
        ``bias`` in the Keras layout; returns a list: ``[output]``, or
        ``[output, *final_states]`` with ``layer.return_state`` (LSTM: h then c).
    ``rnn_vjp(layer, weights, x, upstream, initial_state=None, mask=None)``
        ``upstream`` is one array per returned output (same list as ``rnn`` returns);
        returns gradients of ``sum_k sum(upstream[k] * outputs[k])`` as a dict with
        ``"x"``, ``"initial_state"`` (a tuple, present when an initial state was given)
        and one entry per weight name.
    ``initial_weights(layer, input_dim, seed)``
        the weights a freshly built layer gets from its default initialisers, keyed by
        Keras name in the Keras order, seeded by ``seed`` where the framework allows it.
    ``layer.dtype`` (RNNLayer)
        None for the framework's default policy, or the name of the dtype the layer
        computes and stores its weights in ("float16", "bfloat16", "float64"); outputs come
        back in that dtype.  An adapter that cannot honour it raises Unsupported.
    ``rnn_stateful(layer, weights, calls)``
        one stateful layer (Keras ``stateful=True``; elsewhere: the state carried by hand
        from call to call) fed ``calls`` in order: each item is a chunk (B, t, F) to run, or
        None to reset the states to zeros.  Returns one output list (as ``rnn``) per chunk.
    ``compiled_modes()`` / ``rnn_compiled(mode, layer, weights, x, ...)``
        the names of the compiled call paths the framework offers (e.g. "tf.function",
        "xla", "jax.jit", "torch.compile"), and ``rnn`` through one of them.
    ``roundtrip_modes()`` / ``roundtrip(via, layer, weights, inputs)``
        ways to rebuild a layer ("config": from its configuration plus its weights;
        "file": saved to a file and loaded back) and the outputs of the rebuilt layer on
        ``inputs`` (x for Dense and RNN layers, ids for Embedding), in the form the
        matching forward method returns.
    """

    name = "unnamed"

    def versions(self) -> Mapping[str, str]:
        return {}

    def _unsupported(self, what: str):
        raise Unsupported(f"{self.name} does not implement {what}")

    def one_hot(self, ids, depth):
        self._unsupported("one_hot")

    def cosine_similarity(self, a, b):
        self._unsupported("cosine similarity")

    def dense(self, layer, weights, x):
        self._unsupported("dense")

    def dense_vjp(self, layer, weights, x, upstream):
        self._unsupported("dense gradients")

    def embedding(self, layer, weights, ids):
        self._unsupported("embedding")

    def embedding_mask(self, layer, ids):
        self._unsupported("embedding masks")

    def embedding_vjp(self, layer, weights, ids, upstream):
        self._unsupported("embedding gradients")

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        self._unsupported(f"{layer.cell}")

    def rnn_vjp(self, layer, weights, x, upstream, *, initial_state=None, mask=None):
        self._unsupported(f"{layer.cell} gradients")

    def initial_weights(self, layer, input_dim, seed):
        self._unsupported("default initialisation")

    def rnn_stateful(self, layer, weights, calls):
        self._unsupported("stateful recurrent layers")

    def compiled_modes(self):
        return ()

    def rnn_compiled(self, mode, layer, weights, x, *, initial_state=None, mask=None):
        self._unsupported(f"compiled mode {mode!r}")

    def roundtrip_modes(self):
        return ()

    def roundtrip(self, via, layer, weights, inputs):
        self._unsupported(f"rebuilding a layer ({via})")


def carry_state(impl, layer: RNNLayer, weights: Mapping,
                calls: Sequence[Optional[np.ndarray]]) -> list[list[np.ndarray]]:
    """``rnn_stateful`` for frameworks without stateful layers: the final states of each
    call are handed to the next as its initial state (what a user of torch.nn, ONNX or
    Flax writes by hand); None resets them to zeros."""
    carrying = layer.replace(return_state=True)
    states = None
    results = []
    for chunk in calls:
        if chunk is None:
            states = None
            continue
        outs = list(impl.rnn(carrying, weights, chunk, initial_state=states))
        states = tuple(outs[1:])
        results.append(outs if layer.return_state else outs[:1])
    return results


def right_padded_lengths(mask: Optional[np.ndarray], who: str) -> Optional[np.ndarray]:
    """A Keras mask (B, T) as per-row lengths, for frameworks that take lengths instead of
    masks (torch packed sequences, ONNX ``sequence_lens``): only right padding has such a
    form, and each row must keep at least one step.  Anything else raises Unsupported."""
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    lengths = mask.sum(axis=1)
    if not (mask == (np.arange(mask.shape[1])[None, :] < lengths[:, None])).all():
        raise Unsupported(f"{who} takes sequence lengths: only right-padded masks have that "
                          f"form, not a mask with gaps or leading masked steps")
    if (lengths == 0).any():
        raise Unsupported(f"{who}: a fully masked row (length 0) has no valid form")
    return lengths


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Registered:
    """A built-in implementation: where it lives and what its process needs."""

    name: str
    target: str  # "module:attribute"
    requires: tuple[str, ...] = ()  # importable modules it needs
    # process environment it needs or prefers (implementations that import torch or jax
    # share the process of the Keras backend of that framework)
    env: Mapping[str, str] = field(default_factory=dict)
    install: str = ""  # how to install what it needs
    description: str = ""


_KERAS_BACKENDS = {
    "tensorflow": ("tensorflow",),
    "jax": ("jax",),
    "torch": ("torch",),
    "numpy": ("scipy",),  # Keras's NumPy backend imports scipy
}

REGISTRY: dict[str, Registered] = {
    "reference": Registered(
        "reference", "conformance.implementations.reference:ReferenceImplementation",
        description="the NumPy float64 oracle"),
}
for _backend, _needs in _KERAS_BACKENDS.items():
    REGISTRY[f"keras-{_backend}"] = Registered(
        f"keras-{_backend}", f"conformance.implementations.keras:for_backend_{_backend}",
        requires=("keras",) + _needs, env={"KERAS_BACKEND": _backend},
        install="pip install -e '.[keras]'" if _backend == "tensorflow"
        else f"pip install keras {' '.join(_needs)}",
        description=f"Keras 3 on the {_backend} backend")
REGISTRY["tf-keras"] = Registered(
    "tf-keras", "conformance.implementations.keras:for_tf_keras",
    requires=("tensorflow",), env={"TF_USE_LEGACY_KERAS": "1"},
    install="pip install tf-keras (TensorFlow >= 2.16); tf.keras is Keras 2 up to 2.15",
    description="Keras 2 (tf_keras, or tf.keras on TensorFlow <= 2.15)")
REGISTRY["torch"] = Registered(
    "torch", "conformance.implementations.torch:TorchImplementation", requires=("torch",),
    env={"KERAS_BACKEND": "torch"}, install="pip install torch==2.13.0",
    description="PyTorch torch.nn modules")
REGISTRY["flax"] = Registered(
    "flax", "conformance.implementations.flax:FlaxImplementation", requires=("flax", "jax"),
    env={"KERAS_BACKEND": "jax"}, install="pip install flax", description="Flax nnx Embed, Linear and RNN cells")
REGISTRY["onnxruntime"] = Registered(
    "onnxruntime", "conformance.implementations.onnxruntime:OnnxRuntimeImplementation",
    requires=("onnx", "onnxruntime"), install="pip install onnx onnxruntime",
    description="ONNX graphs (OneHot, MatMul, Gather, RNN, LSTM, GRU) on ONNX Runtime")


def current_keras_backend() -> str:
    """The backend Keras will pick in this process, read without importing Keras."""
    backend = os.environ.get("KERAS_BACKEND")
    if backend:
        return backend
    cfg = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")),
                       "keras.json")
    try:
        import json

        with open(cfg) as fh:
            return json.load(fh).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def canonical_name(name: str) -> str:
    """``keras`` is an alias for the Keras 3 backend of the current process."""
    if name == "keras":
        return f"keras-{current_keras_backend()}"
    return name


def entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points as eps

    return {ep.name: ep.value for ep in eps(group=ENTRY_POINT_GROUP)}


def _tensorflow_version() -> tuple[int, int] | None:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            return tuple(int(p) for p in version(dist).split(".")[:2])
        except (PackageNotFoundError, ValueError):
            continue
    return None


def missing_requirements(name: str) -> list[str]:
    """Modules an implementation needs that cannot be imported (found without importing)."""
    name = canonical_name(name)
    reg = REGISTRY.get(name)
    if reg is None:
        return []
    missing = [m for m in reg.requires if importlib.util.find_spec(m) is None]
    if name == "tf-keras" and not missing:
        tf_version = _tensorflow_version()
        if (tf_version is None or tf_version >= (2, 16)) and \
                importlib.util.find_spec("tf_keras") is None:
            missing.append("tf_keras")  # Keras 2 is a separate package from TF 2.16 on
    if name.startswith("keras-") and not missing:
        from importlib.metadata import PackageNotFoundError, version

        try:
            # Keras 2 (the `keras` of TensorFlow <= 2.15) runs on TensorFlow only
            if int(version("keras").split(".")[0]) < 3 and name != "keras-tensorflow":
                missing.append("keras>=3")
        except (PackageNotFoundError, ValueError):
            missing.append("keras>=3")
    return missing


def installed() -> list[str]:
    """Registered and entry-point implementations whose requirements are importable."""
    names = [n for n in REGISTRY if not missing_requirements(n)]
    names += [n for n in entry_points() if n not in names]
    return names


def process_env(name: str) -> dict[str, str]:
    reg = REGISTRY.get(canonical_name(name))
    return dict(reg.env) if reg else {}


def _import_target(target: str):
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ImplementationUnavailable(
            f"{target!r} is not of the form package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImplementationUnavailable(f"cannot import {module_name!r}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImplementationUnavailable(
                f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "rnn")):
        obj = obj()
    return obj


def load(name: str):
    """Load an implementation by name; raise ImplementationUnavailable with a readable
    reason when that is not possible."""
    name = canonical_name(name)
    reg = REGISTRY.get(name)
    try:
        if reg is not None:
            missing = missing_requirements(name)
            if missing:
                hint = f" ({reg.install})" if reg.install else ""
                raise ImplementationUnavailable(
                    f"{name} needs {', '.join(missing)}, which is not installed{hint}")
            for key, value in reg.env.items():
                if (name.startswith("keras-") and key == "KERAS_BACKEND"
                        and os.environ.get(key, value) != value):
                    raise ImplementationUnavailable(
                        f"{name} needs KERAS_BACKEND={value} but this process has "
                        f"{os.environ[key]}; Keras picks its backend once per process "
                        f"(`conformance run` starts one process per backend)")
            impl = _import_target(reg.target)
        elif ":" in name:
            impl = _import_target(name)
        else:
            eps = entry_points()
            if name not in eps:
                known = sorted(set(REGISTRY) | set(eps) | {"keras"})
                raise ImplementationUnavailable(
                    f"unknown implementation {name!r}; known: {', '.join(known)}, or "
                    f"package.module:attribute")
            impl = _import_target(eps[name])
    except ImplementationUnavailable:
        raise
    except Exception as exc:  # a broken adapter must not take the run down
        raise ImplementationUnavailable(
            f"loading {name} raised {type(exc).__name__}: {exc}") from exc
    missing_methods = [m for m in ("rnn", "embedding", "one_hot") if not hasattr(impl, m)]
    if missing_methods:
        raise ImplementationUnavailable(
            f"{name} resolved to {type(impl).__name__}, which lacks "
            f"{', '.join(missing_methods)}: not an implementation")
    if reg is None or not getattr(impl, "name", None) or impl.name == "unnamed":
        try:  # the name the user gave is the one messages and the report use
            impl.name = name
        except AttributeError:
            pass
    return impl
