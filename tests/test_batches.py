import torch

from lit_mnist.data.batches import SequentialBatches, ShuffledBatches, shard_bounds


def data(count: int = 23) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(count), torch.arange(count) * 10


def test_sequential_batches_cover_every_sample_once_including_the_last_partial_batch():
    images, labels = data()
    batches = list(SequentialBatches(images, labels, batch_size=5))
    assert len(batches) == len(SequentialBatches(images, labels, batch_size=5)) == 5
    assert torch.equal(torch.cat([b[0] for b in batches]), images)
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)


def test_each_epoch_is_a_new_permutation_of_every_sample():
    batches = ShuffledBatches(*data(), batch_size=5, seed=3)
    first = torch.cat([images for images, _ in batches])
    second = torch.cat([images for images, _ in batches])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(23))
    assert not torch.equal(first, second)


def test_the_order_depends_on_the_seed_alone():
    one, two, other = (torch.cat([x for x, _ in ShuffledBatches(*data(), 5, seed=seed)]) for seed in (3, 3, 4))
    assert torch.equal(one, two)
    assert not torch.equal(one, other)


def test_a_restored_state_continues_mid_epoch_with_the_same_batches():
    uninterrupted = ShuffledBatches(*data(), batch_size=5, seed=7)
    expected = [x for epoch in range(3) for x, _ in uninterrupted]

    interrupted = ShuffledBatches(*data(), batch_size=5, seed=7)
    seen = []
    iterator = iter(interrupted)
    for _ in range(7):  # one full epoch of 5 batches and 2 of the next
        try:
            seen.append(next(iterator)[0])
        except StopIteration:
            iterator = iter(interrupted)
            seen.append(next(iterator)[0])
    state = interrupted.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 2

    resumed = ShuffledBatches(*data(), batch_size=5, seed=0)
    resumed.load_state_dict(state)
    seen += [x for x, _ in resumed] + [x for x, _ in resumed]
    assert len(seen) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(seen, expected))


def test_shards_of_a_global_batch_are_disjoint_and_complete():
    for size in (100, 7, 1):
        for world_size in (1, 2, 3):
            parts = [shard_bounds(40, 40 + size, rank, world_size) for rank in range(world_size)]
            assert parts[0][0] == 40 and parts[-1][1] == 40 + size
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_processes_together_see_exactly_the_single_process_batches():
    single = list(ShuffledBatches(*data(), batch_size=6, seed=1))
    shards = [list(ShuffledBatches(*data(), batch_size=6, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(single)
    for whole, part0, part1 in zip(single, *shards):
        assert torch.equal(whole[0], torch.cat([part0[0], part1[0]]))
