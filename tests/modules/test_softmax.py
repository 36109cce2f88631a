import math

import torch

from elmokit.modules.softmax import SoftmaxHead


def test_sampled_equals_full_when_every_class_is_sampled():
    torch.manual_seed(0)
    head = SoftmaxHead(vocab_size=50, dim=8, num_samples=50)
    head.set_counts(torch.ones(50))  # uniform proposal: log(K * Q) = log(50 * 1/50) = 0
    h, y = torch.randn(30, 8), torch.randint(0, 50, (30,))
    sampled = head.sampled_loss(h, y, negatives=torch.arange(50))  # every class once, target hits masked
    torch.testing.assert_close(sampled, head.full_loss(h, y))
    head.num_samples = 10_000  # K >= V: the exact full softmax
    torch.testing.assert_close(head.sampled_loss(h, y), head.full_loss(h, y))


def test_accidental_hits_are_removed():
    head = SoftmaxHead(vocab_size=5, dim=2, num_samples=3)
    head.set_counts(torch.ones(5))
    h, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 3])
    with_hits = head.sampled_loss(h, y, negatives=torch.tensor([0, 0, 4]))
    # by hand: the row whose target is 0 must not see class 0 among its negatives
    log_kq = math.log(3 / 5)
    logits = h @ head.weight.t() + head.bias - log_kq
    rows = []
    for i, t in enumerate(y.tolist()):
        negs = [j for j in [0, 0, 4] if j != t]
        row = torch.stack([logits[i, t]] + [logits[i, j] for j in negs])
        rows.append(-torch.log_softmax(row, 0)[0])
    torch.testing.assert_close(with_hits, torch.stack(rows).mean())


def test_sampled_loss_approximates_full_loss():
    torch.manual_seed(0)
    V = 2000
    counts = torch.randint(1, 1000, (V,)).float()
    head = SoftmaxHead(V, 16, num_samples=1000, alpha=1.0)
    head.set_counts(counts)
    with torch.no_grad():
        head.weight.mul_(3)
    h, y = torch.randn(500, 16), torch.multinomial(counts, 500, replacement=True)
    with torch.no_grad():
        est = torch.stack([head.sampled_loss(h, y) for _ in range(20)]).mean()
    full = head.full_loss(h, y).detach()
    assert abs(float(est - full)) < 0.15 * float(full)


def test_negatives_use_their_own_generator():
    head = SoftmaxHead(100, 4, num_samples=10, seed=7)
    torch.manual_seed(0)
    a = head.sample(torch.device("cpu"))
    state = torch.get_rng_state()
    head2 = SoftmaxHead(100, 4, num_samples=10, seed=7)
    torch.manual_seed(123)  # a different global RNG does not change the negatives ...
    assert torch.equal(head2.sample(torch.device("cpu")), a)
    torch.set_rng_state(state)
    head.sample(torch.device("cpu"))  # ... and drawing negatives does not move the global RNG
    assert torch.equal(torch.get_rng_state(), state)
