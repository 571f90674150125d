import numpy as np

from lmops.training.schedule import block_indices, lr_at


def test_warmup_then_cosine_to_floor():
    assert lr_at(0, 1.0, 10, 100, 0.1) == 0.1
    assert lr_at(9, 1.0, 10, 100, 0.1) == 1.0
    assert abs(lr_at(100, 1.0, 10, 100, 0.1) - 0.1) < 1e-9
    assert lr_at(50, 1.0, 10, 100, 0.1) < lr_at(20, 1.0, 10, 100, 0.1)


def test_ranks_get_disjoint_blocks_and_resume_is_exact():
    a = block_indices(10_000, 50, step=3, batch=4, rank=0, world=2, seed=1)
    b = block_indices(10_000, 50, step=3, batch=4, rank=1, world=2, seed=1)
    assert not set(a) & set(b)
    assert np.array_equal(a, block_indices(10_000, 50, 3, 4, 0, 2, 1))
    assert all(s % 50 == 0 for s in np.concatenate([a, b]))


def test_one_epoch_visits_every_block_once():
    n_blocks = (1001 - 1) // 10
    seen = np.concatenate([block_indices(1001, 10, s, 5, 0, 1, 7) for s in range(20)])
    assert sorted(seen // 10) == list(range(n_blocks))


def test_permutation_is_a_bijection_and_seeds_differ():
    from lmops.training.schedule import permuted

    for n in (1, 2, 3, 97, 1000, 4096):
        assert sorted(permuted(i, n, 5) for i in range(n)) == list(range(n))
    a = [permuted(i, 1000, 1) for i in range(1000)]
    assert a != [permuted(i, 1000, 2) for i in range(1000)] and a != list(range(1000))


def test_a_step_needs_no_memory_of_the_corpus_size():
    # 10^13 tokens in 1024-token blocks: materialising a permutation of ~10^10 blocks
    # (what numpy's shuffle does) would need 80 GB; each offset here is computed alone.
    starts = block_indices(10**13, 1024, step=123_456, batch=16, rank=1, world=8, seed=3)
    assert len(set(starts)) == 16 and all(0 <= s < 10**13 and s % 1024 == 0 for s in starts)
