import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lit_mnist.data import MNISTDataModule
from lit_mnist.data.batches import SequentialBatches, ShuffledBatches, shard_bounds


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A monkeypatch that Hypothesis's repeated examples may share (function-scoped fixtures are not reset)."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch


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


# Sizes as properties: every dataset size, batch size and process count, remainders of 0 and 1 and batches smaller
# than the process count included (Hypothesis shrinks a failure to its smallest case).
sizes = given(
    count=st.integers(1, 300), batch_size=st.integers(1, 64), world_size=st.integers(1, 5), seed=st.integers(0, 99)
)
QUICK = settings(max_examples=300, deadline=None)


def shares(batches_of_each_process: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> list[list[int]]:
    """Each global batch as its processes' shares, in rank order."""
    assert len({len(batches) for batches in batches_of_each_process}) == 1, "the processes disagree on the count"
    return [[part[0] for part in batch] for batch in zip(*batches_of_each_process)]


@QUICK
@sizes
def test_evaluation_counts_every_sample_once_and_gives_no_process_an_empty_batch(count, batch_size, world_size, seed):
    assume(count >= world_size)  # a smaller set is refused by the data module
    batch_size = max(batch_size, world_size)  # as the data module's evaluation loaders take it
    loaders = [SequentialBatches(*data(count), batch_size, rank=r, world_size=world_size) for r in range(world_size)]
    batches = shares([list(loader) for loader in loaders])
    assert len(batches) == len(loaders[0])
    assert all(len(part) >= 1 for batch in batches for part in batch)
    assert torch.equal(torch.cat([part for batch in batches for part in batch]), torch.arange(count))


@QUICK
@sizes
def test_training_shares_out_a_permutation_of_every_sample_with_no_single_digit_share(
    count, batch_size, world_size, seed
):
    assume(count >= world_size and batch_size >= world_size)  # smaller ones are refused by the data module
    loaders = [
        ShuffledBatches(*data(count), batch_size, seed, rank=r, world_size=world_size) for r in range(world_size)
    ]
    single = list(ShuffledBatches(*data(count), batch_size, seed))
    for epoch in range(2):
        batches = shares([list(loader) for loader in loaders])
        assert sorted(torch.cat([part for batch in batches for part in batch]).tolist()) == list(range(count))
        assert all(len(part) >= 1 for batch in batches for part in batch)
        # The shares differ by at most one sample, and only a whole set too small for it has a share of one.
        assert all(max(map(len, batch)) - min(map(len, batch)) <= 1 for batch in batches)
        if count >= 2 * world_size and batch_size >= 2 * world_size:
            assert all(len(part) >= 2 for batch in batches for part in batch)
        # The processes together see the single process's batches, unless the last batch is merged into the one
        # before it for them and not for one process.
        if epoch == 0 and (count % batch_size == 0 or count % batch_size >= 2 * world_size or count <= batch_size):
            assert [torch.cat(batch).tolist() for batch in batches] == [images.tolist() for images, _ in single]


@QUICK
@given(count=st.integers(1, 120), batch_size=st.integers(1, 16), seed=st.integers(0, 99), stop=st.integers(0, 40))
def test_a_loader_restored_at_any_batch_goes_on_with_the_uninterrupted_batches(count, batch_size, seed, stop):
    uninterrupted = ShuffledBatches(*data(count), batch_size, seed)
    expected = [images for _ in range(3) for images, _ in uninterrupted]
    assume(stop < len(expected))
    interrupted = ShuffledBatches(*data(count), batch_size, seed)
    seen, iterator = [], iter(interrupted)
    while len(seen) < stop:
        batch = next(iterator, None)
        if batch is None:
            iterator = iter(interrupted)
            continue
        seen.append(batch[0])
    resumed = ShuffledBatches(*data(count), batch_size, seed=0)  # as a new process makes it, before the restore
    resumed.load_state_dict(interrupted.state_dict())
    while len(seen) < len(expected):
        seen += [images for images, _ in resumed]
    assert all(torch.equal(a, b) for a, b in zip(seen, expected, strict=True))


@QUICK
@given(count=st.integers(2, 200), val_size=st.integers(0, 200))
def test_the_split_holds_out_the_first_digits_and_trains_on_the_rest(count, val_size, monkeypatch_module):
    assume(val_size < count)
    datamodule = MNISTDataModule(download=False, val_size=val_size)
    monkeypatch_module.setattr(datamodule, "_load", lambda train: data(count))
    datamodule.setup("fit")
    (val_images, _), (train_images, _) = datamodule.val_data, datamodule.train_data
    assert val_images.tolist() == list(range(val_size))
    assert train_images.tolist() == list(range(val_size, count))
