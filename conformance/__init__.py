"""A property-based conformance suite for one-hot encoding, Dense on one-hot vectors,
Embedding, SimpleRNN, LSTM and GRU layers.

Importing this package imports no framework; adapters import theirs when loaded."""

__version__ = "0.1.0"
