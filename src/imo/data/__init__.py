"""Data: built-in and user corpora, the byte tokenizer, batching."""

from imo.data.batches import random_batch, windows
from imo.data.corpora import CORPORA, Corpus, load_corpus
from imo.data.tokenizer import TOKENIZERS, ByteTokenizer

__all__ = ["CORPORA", "Corpus", "load_corpus", "random_batch", "windows", "TOKENIZERS", "ByteTokenizer"]
