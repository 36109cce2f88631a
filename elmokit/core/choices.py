"""Every list of allowed values that more than one place checks, in one place. Nothing heavy is imported here: the
command line reads these for its options and ``--help``."""

DIRECTIONS = ("forward", "backward")  # of an LM
VOCAB_TYPES = ("unigram", "bpe", "char", "word")  # `vocab --model-type`; char: one piece per character (plus ``▁``
#   per space), so an LM on it reads and predicts one character at a time; word: bilm-tf's word vocabulary (PREFIX.txt)
#   for the character-CNN LM (model.encoder=char_cnn)
CELLS = ("lstm", "gru", "rnn")  # model.cell
IMPLS = ("auto", "fused", "torch")  # model.impl: the recurrent kernel
HEADS = ("sampled", "full")  # model.head: the softmax
POOLINGS = ("edges", "first", "last", "mean")  # how a word's pieces give its vector
LAYER_MODES = ("all", "top", "average")  # what `embed` writes per word
LAYOUTS = ("allennlp", "packed")  # `embed`'s HDF5 layouts
DTYPES = ("float32", "float16")  # of `embed`'s vectors
TASKS = ("tagger", "classifier")  # a downstream config's task
COLUMN_FORMATS = ("conllu", "conll")  # downstream column files (one word per line); the other formats are tables
TASK_FORMATS = (*COLUMN_FORMATS, "tsv", "csv", "jsonl", "label_text")  # downstream data files (and hf: paths)
TAG_KINDS = ("upos", "xpos")  # which CoNLL-U column a tagger learns (data.tag)
FEATURE_SOURCES = ("cache", "on_the_fly")  # train.features: the biLM's vectors cached once per split, or per batch
INFERENCE_PRECISIONS = ("fp32", "bf16", "fp16")  # a frozen biLM's arithmetic (`embed --precision`); lower on GPUs
PRECISIONS = ("no", "bf16")  # train.precision (pretraining), train.mixed_precision (downstream): accelerate's names
SENTENCE_POOLINGS = ("max", "mean", "attention", "max_mean")  # the classifier's pooling over words
CELL_FEATURES = ("quotes", "brackets", "line_position", "word_position", "digits")  # `cells --feature`
