"""``elmokit substitutes``: the language models' most likely words at a position, against a hand computation
(softmax of the top layer · W^T + b) for an imported ELMo with a softmax and for elmokit's own pieces biLM."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from elmokit.bilm.bundle import load_bilm
from elmokit.bilm.charbilm import write_char_bundle
from elmokit.bilm.import_elmo import import_archive, options_config
from elmokit.bilm.substitutes import substitutes
from elmokit.cli import main
from elmokit.core.errors import ElmokitError
from tests.bilm.test_import_zip import WORDS, _tiny_state, nlpl_zip
from tests.conftest import ELMO_FIXTURE

SENTENCE = "the cat sat on the mat .".split()


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.fixture(scope="module")
def elmo_softmax(tmp_path_factory):
    """bilm-tf's test model with a synthetic softmax (W, b), imported from an NLPL-style archive."""
    d = tmp_path_factory.mktemp("subst")
    archive, W, b = nlpl_zip(d / "src")
    path = import_archive(archive, d / "bilm")
    return load_bilm(path), W, b, path


def char_top_states(bilm, words):
    """Per token of ``<S> words </S>``, each direction's top layer (D,), computed step by step from zeros."""
    m = bilm.vocab
    seq = [m.bos_token, *words, m.eos_token]
    tok = bilm.token_vectors(seq)  # (L, D)
    out = {}
    for name, rnn, order in (
        ("f", bilm.forward_rnn, range(len(seq))),
        ("b", bilm.backward_rnn, reversed(range(len(seq)))),
    ):
        state, tops = None, {}
        for t in order:
            layers, state = rnn(tok[t].view(1, 1, -1), state)
            tops[t] = layers[-1][0, 0]
        out[name] = [tops[t] for t in range(len(seq))]
    return out["f"], out["b"]


@pytest.mark.parametrize("position", [0, 1, 3, 6])
def test_char_biLM_equals_a_hand_computation(elmo_softmax, position):
    bilm, W, b, _ = elmo_softmax
    r = substitutes(bilm, SENTENCE, position, top=len(WORDS), delimiters=True)
    fwd, bwd = char_top_states(bilm, SENTENCE)
    p_f = softmax(W @ fwd[position].numpy() + b)  # the top layer at the token before (<S> for the first word)
    p_b = softmax(W @ bwd[position + 2].numpy() + b)  # the top layer at the token after (</S> for the last)
    if 0 < position < len(SENTENCE) - 1:  # the same states through the embedder's path: layer 2 at the neighbours
        v = bilm.encode_rows([[SENTENCE]])[0][0]  # (3, words, 32)
        np.testing.assert_allclose(v[2, position - 1, :16].numpy(), fwd[position].numpy(), atol=1e-6)
        np.testing.assert_allclose(v[2, position + 1, 16:].numpy(), bwd[position + 2].numpy(), atol=1e-6)
    assert r.unit == "word" and r.word == SENTENCE[position] and len(r.forward) == len(WORDS)
    for cands, p in ((r.forward, p_f), (r.backward, p_b), (r.both, np.sqrt(p_f * p_b))):
        assert [c.id for c in cands] == list(np.argsort(-p, kind="stable"))
        np.testing.assert_allclose([c.probability for c in cands], np.sort(p)[::-1], rtol=1e-5)
        assert [c.token for c in cands] == [WORDS[c.id] for c in cands]


def test_delimiters_are_left_out_by_default(elmo_softmax):
    bilm = elmo_softmax[0]
    r = substitutes(bilm, SENTENCE, 2, top=100)
    for cands in (r.forward, r.backward, r.both):
        assert len(cands) == len(WORDS) - 2 and not {c.token for c in cands} & {"<S>", "</S>"}
    assert r.forward[0].probability == substitutes(bilm, SENTENCE, 2, top=1, delimiters=False).forward[0].probability


def test_per_direction_softmaxes(tmp_path):
    """elmokit's separately pretrained pairs keep one softmax per direction: the backward LM reads its own."""
    cfg = options_config(ELMO_FIXTURE / "options.json")
    cfg.vocab_size, cfg.softmax = len(WORDS), "per-direction"
    state = _tiny_state(cfg)
    bilm = load_bilm(write_char_bundle(tmp_path / "b", cfg, state, {"kind": "test"}, "test", vocab=WORDS))
    r = substitutes(bilm, SENTENCE, 3, top=len(WORDS), delimiters=True)
    _, bwd = char_top_states(bilm, SENTENCE)
    W, b = state["softmax_backward.weight"].numpy(), state["softmax_backward.bias"].numpy()
    p_b = softmax(W @ bwd[5].numpy() + b)
    assert [c.id for c in r.backward] == list(np.argsort(-p_b, kind="stable"))
    # random N(0, 1) weights make large logits: the two ways of running the stack differ in the 4th digit
    np.testing.assert_allclose([c.probability for c in r.backward], np.sort(p_b)[::-1], rtol=2e-3)
    assert not np.allclose([c.probability for c in r.backward], [c.probability for c in r.forward])


def test_pieces_biLM_equals_a_hand_computation(tiny_pair):
    """elmokit's own biLM: the forward LM before the word's first piece, the backward LM after its last; the
    candidates are pieces, and the result says so."""
    bilm = load_bilm(tiny_pair["bundle"])
    words = "the cat sees a dog .".split()
    k = 2
    r = substitutes(bilm, words, k, top=5)
    top = bilm.num_layers - 1
    D = bilm.dim
    last = bilm.encode_words([[words]], "last")  # (layers, words, 2D): forward at each word's last piece
    first = bilm.encode_words([[words]], "first")  # backward at each word's first piece
    h_f, h_b = last[top, k - 1, :D], first[top, k + 1, D:]
    p_f = torch.softmax(bilm.forward_lm.head.full_logits(h_f[None])[0].double(), -1).numpy()
    p_b = torch.softmax(bilm.backward_lm.head.full_logits(h_b[None])[0].double(), -1).numpy()
    assert r.unit == "piece" and "pieces" in r.note and r.pieces
    for cands, p in ((r.forward, p_f), (r.backward, p_b), (r.both, np.sqrt(p_f * p_b))):
        p = p.copy()
        p[[1, 2, 3]] = -1  # <s>, </s>, <pad>: left out
        assert [c.id for c in cands] == list(np.argsort(-p, kind="stable")[:5])
        np.testing.assert_allclose([c.probability for c in cands], np.sort(p)[::-1][:5], rtol=1e-5)
        assert [c.token for c in cands] == [bilm.vocab.sp.id_to_piece(c.id) for c in cands]
    res = CliRunner().invoke(main, ["substitutes", str(tiny_pair["bundle"]), " ".join(words), "-k", "2", "--top", "3"])
    assert res.exit_code == 0 and "pieces, not words" in res.output and "most likely pieces" in res.output, res.output


def test_the_command(elmo_softmax):
    bilm, _, _, bundle = elmo_softmax
    res = CliRunner().invoke(main, ["substitutes", str(bundle), " ".join(SENTENCE), "--position", "1", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    want = substitutes(bilm, SENTENCE, 1)
    assert got["word"] == "cat" and got["unit"] == "word"
    assert [c["token"] for c in got["both"]] == [c.token for c in want.both]
    res = CliRunner().invoke(main, ["substitutes", str(bundle), " ".join(SENTENCE), "--position", "1", "--top", "3"])
    assert res.exit_code == 0 and "forward LM, after 'the'" in res.output and "backward LM, before" in res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("    ")]) == 9  # 3 lists of 3


@pytest.mark.parametrize(
    "args, says",
    [
        (["{tf}", "a b c", "--position", "0"], "keeps no softmax"),
        (["{sm}", "a b c", "--position", "3"], "position 3: the sentence has 3 words, so 0 to 2"),
        (["{sm}", "a b c", "--position", "-1"], "position -1"),
        (["{sm}", "   ", "--position", "0"], "the sentence has no words"),
        (["{sm}", "a b c", "--position", "0", "--top", "0"], "--top 0: must be 1 or more"),
        (["{tmp}/nothing", "a b c", "--position", "0"], "not a biLM bundle"),
    ],
)
def test_bad_input_is_one_line(elmo_bundles, elmo_softmax, tmp_path, args, says):
    fields = {"tf": elmo_bundles["tf"], "sm": elmo_softmax[3], "tmp": tmp_path}
    res = CliRunner().invoke(main, ["substitutes", *[a.format(**fields) for a in args]])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], res.output


def test_no_softmax_from_python(elmo_bundles):
    with pytest.raises(ElmokitError, match="keeps no softmax.*vocab.txt"):
        substitutes(load_bilm(elmo_bundles["tf"]), SENTENCE, 0)


def test_help():
    res = CliRunner().invoke(main, ["substitutes", "--help"])
    assert res.exit_code == 0 and "--position" in res.output and "Example" in res.output
