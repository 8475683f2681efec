import numpy as np

from curation.synthetic import BLOCK_ROWS, Mixture, write_mixture

MIX = Mixture(d=4, modes=30, alpha=1.5, spread=0.1, seed=7)


def test_written_mixture_is_seeded_and_a_prefix_of_larger_sizes(tmp_path):
    n_small, n_big = 1000, BLOCK_ROWS + 500  # the big one spans two blocks
    p_small, m_small = write_mixture(tmp_path / "a", n_small, MIX)
    p_big, m_big = write_mixture(tmp_path / "b", n_big, MIX)
    small, big = np.load(p_small, mmap_mode="r"), np.load(p_big, mmap_mode="r")
    assert small.shape == (n_small, 4) and big.shape == (n_big, 4) and small.dtype == np.float32
    assert np.array_equal(small, big[:n_small])
    assert np.array_equal(np.load(m_small), np.load(m_big)[:n_small])
    again, _ = write_mixture(tmp_path / "c", n_small, MIX)
    assert np.array_equal(np.load(again), small)
    other, _ = write_mixture(tmp_path / "d", n_small, Mixture(d=4, modes=30, alpha=1.5, spread=0.1, seed=8))
    assert not np.array_equal(np.load(other), small)


def test_modes_follow_the_long_tail_and_points_sit_at_their_centres(tmp_path):
    p, m = write_mixture(tmp_path, BLOCK_ROWS, MIX)
    x, modes = np.load(p), np.load(m)
    freq = np.bincount(modes, minlength=MIX.modes) / len(modes)
    probs = MIX.probabilities()
    assert np.abs(freq - probs).max() < 0.005  # 262k draws: sampling error is ~0.001
    rare = MIX.rare(0.5)
    assert rare.sum() == 15 and rare[-1] and not rare[0]
    assert 0.01 < probs[rare].sum() < 0.08  # the tail half of the modes is a few percent of the points
    centres = MIX.centres()
    dist = np.linalg.norm(x - centres[modes], axis=1)
    assert dist.mean() < 4 * MIX.spread * np.sqrt(MIX.d)


def test_a_finished_file_is_reused_and_an_interrupted_one_redone(tmp_path):
    p, m = write_mixture(tmp_path, 2000, MIX)
    stamp = p.stat().st_mtime_ns
    assert write_mixture(tmp_path, 2000, MIX) == (p, m)
    assert p.stat().st_mtime_ns == stamp  # not rewritten
    p.unlink()  # as if interrupted before the final rename: the temporary is not taken for done
    (tmp_path / f".{p.name}.tmp").write_bytes(b"half")
    p2, _ = write_mixture(tmp_path, 2000, MIX)
    assert np.load(p2).shape == (2000, 4)
    assert not (tmp_path / f".{p.name}.tmp").exists()
