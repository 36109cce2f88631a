"""The frozen biLM: pairing two LMs into a bundle, the original character-CNN ELMo and its import, word vectors
from both kinds, the domain-fit check, adaptation to new text, the torch layer with scalar mixes."""
