import itertools

import torch

from elmokit.modules.crf import CRF, allowed_transitions


def brute_force(crf, emissions, length):
    trans, start, end = crf._scores()
    scores = {}
    for seq in itertools.product(range(emissions.size(-1)), repeat=length):
        s = start[seq[0]] + emissions[0, seq[0]]
        for t in range(1, length):
            s = s + trans[seq[t - 1], seq[t]] + emissions[t, seq[t]]
        scores[seq] = s + end[seq[-1]]
    return scores


def test_partition_and_viterbi_equal_brute_force():
    torch.manual_seed(0)
    crf = CRF(4)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    logz = crf.log_partition(emissions, mask)
    paths = crf.viterbi(emissions, mask)
    for b, n in enumerate([5, 3]):
        scores = brute_force(crf, emissions[b], n)
        want = torch.logsumexp(torch.stack(list(scores.values())), 0)
        torch.testing.assert_close(logz[b], want)
        best = max(scores, key=lambda k: float(scores[k]))
        assert paths[b] == list(best)
        tags = torch.tensor([list(best) + [0] * (5 - n)])
        torch.testing.assert_close(crf.score(emissions[b : b + 1], tags, mask[b : b + 1])[0], scores[best])


def test_bio_constraints_never_emit_i_after_o():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = CRF(len(tags), allowed_transitions(tags, "bio"))
    torch.manual_seed(1)
    emissions = torch.randn(50, 8, len(tags))
    emissions[..., 2] += 3.0  # push hard towards I-PER everywhere
    emissions[..., 4] += 3.0
    for path in crf.viterbi(emissions, torch.ones(50, 8, dtype=torch.bool)):
        prev = "O"
        for t in path:
            tag = tags[t]
            if tag.startswith("I-"):
                assert prev != "O" and prev[2:] == tag[2:], (prev, tag)
            prev = tag


def test_bioes_constraints():
    tags = ["O", "B-X", "I-X", "E-X", "S-X"]
    trans, start, end = allowed_transitions(tags, "bioes")
    i = {t: k for k, t in enumerate(tags)}
    assert trans[i["B-X"], i["E-X"]] and not trans[i["B-X"], i["O"]] and not trans[i["O"], i["E-X"]]
    assert not start[i["I-X"]] and not end[i["B-X"]] and end[i["E-X"]]
