"""Downstream tasks: readers (CoNLL, CoNLL-U, TSV), tag schemes, metrics, and (to come) taggers and classifiers."""
