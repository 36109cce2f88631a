"""Every list of allowed values that more than one place checks, in one place. Nothing heavy is imported here: the
command line reads these for its options and ``--help``."""

DIRECTIONS = ("forward", "backward")  # of an LM
VOCAB_TYPES = ("unigram", "bpe", "char")  # `vocab --model-type`; char: one piece per character (plus ``▁`` per
#                                           space), so an LM on it reads and predicts one character at a time
CELLS = ("lstm", "gru", "rnn")  # model.cell
IMPLS = ("auto", "fused", "torch")  # model.impl: the recurrent kernel
HEADS = ("sampled", "full")  # model.head: the softmax
POOLINGS = ("edges", "first", "last", "mean")  # how a word's pieces give its vector
LAYER_MODES = ("all", "top", "average")  # what `embed` writes per word
LAYOUTS = ("allennlp", "packed")  # `embed`'s HDF5 layouts
DTYPES = ("float32", "float16")  # of `embed`'s vectors
TASK_FORMATS = ("conllu", "conll", "tsv", "csv", "jsonl", "label_text")  # downstream data files (and hf: paths)
SENTENCE_POOLINGS = ("max", "mean", "attention", "max_mean")  # the classifier's pooling over words
CELL_FEATURES = ("quotes", "brackets", "line_position", "word_position", "digits")  # `cells --feature`
