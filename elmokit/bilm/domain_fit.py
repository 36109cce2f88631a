"""Does a biLM fit a text? ``elmokit fit`` and every downstream run measure each direction's perplexity per piece
on a sample of the text and compare it with the LM's own validation perplexity (kept in its manifest); a ratio
above :data:`MISFIT_RATIO` means the biLM reads the text as foreign, and its vectors may hurt more than help.

The threshold comes from measurements (recipes/README.md, "Domain fit"): the WikiText-2 `small` biLM reads
WikiText-2 test at ratio 1.07, its own validation text lower-cased at 2.80, UD English-EWT's web text at 7.98, PTB
at 11.6 and Korean at ~9,000; the issue's PTB-tokenized lower-cased movie reviews (where ELMo cost 4 points) read
at ~9, and ~1.6 once adapted (``elmokit adapt``), when ELMo helped again.
The check also reports the text's casing and how many of its characters the vocabulary lacks (byte fallback).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from elmokit.core.errors import CorpusError, ElmokitError

if TYPE_CHECKING:
    from torch import nn

    from elmokit.bilm.frozen import FrozenBiLM
    from elmokit.lm.vocab import Vocab

MISFIT_RATIO = 2.0  # sample perplexity per piece / the LM's own validation perplexity per piece


def casing(lines: list[str]) -> dict[str, float]:
    """Share of letters in upper case, and of lines whose first letter is upper case (0 for lower-cased text)."""
    letters = upper = starts = starts_upper = 0
    for line in lines:
        first = next((c for c in line if c.isalpha()), None)
        if first is not None:
            starts += 1
            starts_upper += first.isupper()
        for c in line:
            if c.isalpha():
                letters += 1
                upper += c.isupper()
    return {"upper_share": upper / max(letters, 1), "lines_starting_upper": starts_upper / max(starts, 1)}


def sample_lines(lines: list[str], k: int, seed: int = 0) -> list[str]:
    """``k`` non-empty lines drawn without replacement (all of them when there are fewer), in their order."""
    nonempty = [x for x in lines if x.strip()]
    if len(nonempty) <= k:
        return nonempty
    keep = sorted(random.Random(seed).sample(range(len(nonempty)), k))
    return [nonempty[i] for i in keep]


def own_perplexity(manifest: dict) -> float | None:
    """The LM's validation perplexity per piece at the end of its training (None if it had no validation text)."""
    v = (manifest.get("summary") or {}).get("final_valid") or {}
    return v.get("ppl")


def language_models(bilm: FrozenBiLM | str | Path) -> tuple[dict[str, tuple[nn.Module, dict]], Vocab, str, Any]:
    """Each direction's LM (with its softmax) and manifest, their shared vocabulary, a name for the biLM, and for
    character-CNN LMs how they read characters (``None`` for pieces): from a loaded biLM (a character biLM's
    directions as :func:`elmokit.bilm.char_pair.direction_lm` gives them), or a bundle or one LM directory on disk.

    Raises:
        ElmokitError: a biLM without a softmax (an imported ELMo), whose perplexity cannot be measured.
    """
    from elmokit.bilm.bundle import load_bilm
    from elmokit.lm.model_dir import load_model

    name = str(bilm) if isinstance(bilm, (str, Path)) else "the biLM"
    if isinstance(bilm, (str, Path)):
        p = Path(bilm)
        if (p / "manifest.json").is_file() and not (p / "forward").is_dir() and (p / "config.yaml").is_file():
            one = load_model(p)  # one LM's model directory
            return {one.manifest["direction"]: (one.model, one.manifest)}, one.vocab, name, one.mapper
        bilm = load_bilm(p)
    if not bilm.has_softmax:
        raise ElmokitError(
            f"{name}: an imported ELMo keeps no softmax, so its perplexity cannot be measured; "
            f"elmokit fit needs a biLM trained with elmokit (`elmokit bundle`)"
        )
    if not hasattr(bilm, "forward_lm"):  # a character biLM: its directions as the LMs elmokit trains
        from elmokit.bilm.char_pair import direction_lm

        lms = {}
        for direction in ("forward", "backward"):
            lm, vocab = direction_lm(bilm, direction)
            lms[direction] = (lm, {"summary": {"final_valid": bilm.own_valid.get(direction) or {}}})
        return lms, vocab, name, bilm.vocab
    lms = {
        "forward": (bilm.forward_lm, bilm.manifests.get("forward", {})),
        "backward": (bilm.backward_lm, bilm.manifests.get("backward", {})),
    }
    return lms, bilm.vocab, name, None


def measure_fit(
    bilm: FrozenBiLM | str | Path,
    lines: list[str],
    max_lines: int = 2000,
    seed: int = 0,
    what: str = "the text",
    adapt_args: str = "TEXT_FILE",
    name: str = "",
) -> dict:
    """Measure how well ``bilm`` (loaded, or a bundle or one LM directory) fits ``lines``; ``adapt_args`` are the
    files (and ``--format`` options) that ``lines`` came from, and ``name`` the biLM's path, for the command the
    warning gives.

    Returns:
        ``{"directions": {dir: {"sample_ppl", "own_valid_ppl", "ratio"}}, "ratio" (the larger), "fits",
        "threshold", "sample_lines", "sample_pieces", "casing", "character_coverage", "warning"}``;
        ``fits`` is None when no direction has an own validation figure to compare with.

    Raises:
        CorpusError: no line of ``lines`` holds any text (nothing to measure); ``max_lines`` under 1.
        ElmokitError: a biLM without a softmax (see :func:`language_models`).
    """
    from elmokit.lm.evaluate import stream_nll_by_stream
    from elmokit.lm.vocab import EOS_ID, measure

    if max_lines < 1:
        raise CorpusError(f"--lines {max_lines}: must be 1 or more (the lines of {what} sampled)")
    sample = sample_lines(lines, max_lines, seed)
    if not sample:
        raise CorpusError(
            f"{what}: nothing to measure: {'every line is blank' if lines else 'no lines'}; give text with words in it"
        )
    lms, vocab, default_name, mapper = language_models(bilm)
    result: dict = {
        "bilm": name or default_name,
        "threshold": MISFIT_RATIO,
        "sample_lines": len(sample),
        "directions": {},
    }
    # both directions share one vocabulary: the sample is encoded once
    words = None
    if mapper is None:
        tokens = np.asarray([EOS_ID, *(t for x in vocab.encode_batch(sample) for t in [*x, EOS_ID])], dtype=np.int32)
    else:  # a word vocabulary (the character-CNN LMs): each line <S> words </S>
        from elmokit.lm.words import encode_word_lines

        encoded = encode_word_lines(sample, vocab)
        tokens, words = encoded.ids, encoded.table(vocab, mapper)
    result["sample_pieces"] = int(len(tokens) - 1)
    for direction, (model, manifest) in lms.items():
        device = next(model.parameters()).device
        nll, n = stream_nll_by_stream(
            model, tokens, direction == "backward", batch=10, bptt=35, device=device, words=words
        )
        ppl = math.exp(float(nll.sum()) / max(int(n.sum()), 1))
        own = own_perplexity(manifest)
        result["directions"][direction] = {"sample_ppl": ppl, "own_valid_ppl": own, "ratio": ppl / own if own else None}
    ratios = [r["ratio"] for r in result["directions"].values() if r["ratio"] is not None]
    result["ratio"] = max(ratios) if ratios else None
    result["fits"] = (result["ratio"] <= MISFIT_RATIO) if ratios else None
    result["casing"] = casing(sample)
    if words is None:
        result["character_coverage"] = measure(vocab, sample)["character_coverage"]
    else:
        from elmokit.lm.words import word_coverage

        result["character_coverage"] = 1.0  # a character CNN reads every word by its characters
        result["word_coverage"] = word_coverage(sample, vocab)  # the softmax's words (others are <UNK>)
    result["warning"] = misfit_warning(result, what, adapt_args) if result["fits"] is False else ""
    return result


def adapt_arguments(files: list[str], fmt: str = "text", text_column: str = "") -> str:
    """The FILE... and format options of ``elmokit adapt`` that read the same text as ``files`` in ``fmt``."""
    import shlex

    args = [
        *files,
        *([] if fmt == "text" else ["--format", fmt]),
        *(["--text-column", text_column] if text_column else []),
    ]
    return shlex.join(args)


def misfit_warning(r: dict, what: str, adapt_args: str = "TEXT_FILE") -> str:
    """The warning for a biLM that does not fit, with the command that adapts it."""
    per = "; ".join(
        f"{d} {x['sample_ppl']:.1f} vs {x['own_valid_ppl']:.1f}"
        for d, x in r["directions"].items()
        if x["ratio"] is not None
    )
    hints = []
    if r["casing"]["upper_share"] < 0.005:
        hints.append("the text is lower-cased")
    if r["character_coverage"] < 0.99:
        hints.append(f"{1 - r['character_coverage']:.1%} of its characters are not in the vocabulary")
    why = f" ({', '.join(hints)})" if hints else ""
    return (
        f"warning: the biLM {r['bilm']} does not fit {what}{why}: perplexity per piece {per} on its own "
        f"validation text, {r['ratio']:.1f} times (above {r['threshold']:g}). Its vectors may hurt more than "
        f"help. Adapt it to the text first: elmokit adapt {r['bilm']} {adapt_args} --out {r['bilm']}-adapted "
        f"(then model.bilm={r['bilm']}-adapted)"
    )


def summary_lines(r: dict) -> list[str]:
    """The table ``elmokit fit`` prints."""
    rows = [
        f"{r['sample_lines']:,} lines ({r.get('sample_pieces', 0):,} pieces); perplexity per piece:",
        f"{'direction':<10} {'this text':>10} {'own valid':>10} {'ratio':>7}",
    ]
    for d, x in r["directions"].items():
        own = f"{x['own_valid_ppl']:.1f}" if x["own_valid_ppl"] else "unknown"
        ratio = f"{x['ratio']:.2f}" if x["ratio"] is not None else "-"
        rows.append(f"{d:<10} {x['sample_ppl']:>10.1f} {own:>10} {ratio:>7}")
    c = r["casing"]
    rows.append(
        f"letters in upper case {c['upper_share']:.1%}, lines starting upper case "
        f"{c['lines_starting_upper']:.1%}; characters in the vocabulary {r['character_coverage']:.2%}"
    )
    verdict = ("fits" if r["fits"] else "does NOT fit") if r["fits"] is not None else "cannot tell (no own figure)"
    rows.append(f"verdict: {verdict} (threshold ratio {r['threshold']:g})")
    return rows
