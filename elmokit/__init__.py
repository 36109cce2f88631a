"""elmokit: pretrain ELMo-style biLMs on your own corpus, dump contextual vectors, feed downstream models."""

__version__ = "0.1.0"
