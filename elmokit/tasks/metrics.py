"""Metrics: span-level micro F1 exactly as conlleval computes it (any of IOB1/BIO/BIOES input), per-type F1,
token accuracy, and accuracy / macro F1 for classification."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from elmokit.tasks.tags import bioes_to_bio, split_tag


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, typ: str) -> bool:
    """conlleval.pl's startOfChunk, rule for rule."""
    return (
        (prev_tag, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
        or (tag not in ("O", ".") and prev_type != typ)
        or tag in ("[", "]")
    )


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, typ: str) -> bool:
    """conlleval.pl's endOfChunk, rule for rule."""
    return (
        (prev_tag, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
        or (prev_tag not in ("O", ".") and prev_type != typ)
        or prev_tag in ("[", "]")
    )


@dataclass
class SpanScores:
    correct: int = 0
    guessed: int = 0
    gold: int = 0
    tokens: int = 0
    correct_tokens: int = 0
    per_type: dict = field(default_factory=dict)  # type -> [correct, guessed, gold]

    @staticmethod
    def _prf(c: int, g: int, t: int) -> tuple[float, float, float]:
        p = 100.0 * c / g if g else 0.0
        r = 100.0 * c / t if t else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    @property
    def precision(self) -> float:
        return self._prf(self.correct, self.guessed, self.gold)[0]

    @property
    def recall(self) -> float:
        return self._prf(self.correct, self.guessed, self.gold)[1]

    @property
    def f1(self) -> float:
        return self._prf(self.correct, self.guessed, self.gold)[2]

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct_tokens / self.tokens if self.tokens else 0.0

    def type_f1(self) -> dict[str, float]:
        return {t: self._prf(*v)[2] for t, v in sorted(self.per_type.items())}


def span_f1(gold: list[list[str]], pred: list[list[str]], scheme: str = "bio") -> SpanScores:
    """conlleval's counts over sentences of gold and predicted tags (a blank line, i.e. ``O``, between sentences).

    Args:
        scheme: ``bio`` (also right for IOB1 input, which conlleval reads as is) or ``bioes`` (converted to BIO
            first: conlleval has no S tag and would merge ``E-X B-X``).

    Raises:
        ValueError: sentences of different lengths.
    """
    if scheme == "bioes":
        gold, pred = [bioes_to_bio(t) for t in gold], [bioes_to_bio(t) for t in pred]
    s = SpanScores()
    per = {}
    for gs, ps in zip(gold, pred, strict=True):
        if len(gs) != len(ps):
            raise ValueError(f"gold has {len(gs)} tags, prediction {len(ps)}")
        in_correct = False
        last_g, last_p, last_gt, last_pt = "O", "O", "", ""
        for g_tag, p_tag in [*zip(gs, ps), ("O", "O")]:  # a trailing O closes open chunks
            g, gt = split_tag(g_tag)
            p, pt = split_tag(p_tag)
            end_g = _end_of_chunk(last_g, g, last_gt, gt)
            end_p = _end_of_chunk(last_p, p, last_pt, pt)
            start_g = _start_of_chunk(last_g, g, last_gt, gt)
            start_p = _start_of_chunk(last_p, p, last_pt, pt)
            if in_correct:
                if end_g and end_p and last_gt == last_pt:
                    in_correct = False
                    s.correct += 1
                    per.setdefault(last_gt, [0, 0, 0])[0] += 1
                elif end_g != end_p or gt != pt:
                    in_correct = False
            if start_g and start_p and gt == pt:
                in_correct = True
            if start_g:
                s.gold += 1
                per.setdefault(gt, [0, 0, 0])[2] += 1
            if start_p:
                s.guessed += 1
                per.setdefault(pt, [0, 0, 0])[1] += 1
            last_g, last_p, last_gt, last_pt = g, p, gt, pt
        s.tokens += len(gs)
        s.correct_tokens += sum(a == b for a, b in zip(gs, ps))
    s.per_type = per
    return s


def classification_scores(gold: list[str], pred: list[str]) -> dict[str, float]:
    """Accuracy and macro F1 (percent)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels, {len(pred)} predictions")
    acc = 100.0 * sum(a == b for a, b in zip(gold, pred)) / max(len(gold), 1)
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    f1s = []
    for label in sorted(set(gold) | set(pred)):
        prec = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        rec = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return {"accuracy": acc, "macro_f1": 100.0 * sum(f1s) / max(len(f1s), 1)}
