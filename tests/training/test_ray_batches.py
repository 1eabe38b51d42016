"""The O(1)-memory epoch permutation and per-rank batches."""
import numpy as np
from hypothesis import given, settings, strategies as st

from nerfw.training.ray_batches import permute


@given(st.integers(1, 5000), st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_permutation_is_a_bijection(n, key):
    image = permute(np.arange(n), n, key)
    assert np.array_equal(np.sort(image), np.arange(n))


def test_permutation_changes_with_key_and_looks_shuffled():
    n = 10_000
    a, b = permute(np.arange(n), n, 1), permute(np.arange(n), n, 2)
    assert not np.array_equal(a, b)
    # consecutive positions should not map to consecutive pixels (a shuffle, not a shift)
    assert np.mean(np.abs(np.diff(a)) == 1) < 0.01
    # correlation between position and pixel is small
    assert abs(np.corrcoef(np.arange(n), a)[0, 1]) < 0.1


class FakeCache:
    def __init__(self, sizes):
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.pixels = (np.arange(self.offsets[-1])[:, None] % 251 * np.ones(3, int)).astype(np.uint8)
        self.depth = None


def make_batcher(world_size, batch_size=16):
    from nerfw.data.scene import CameraView, Normalization
    from nerfw.training.ray_batches import RayBatcher

    cams = [CameraView(f"im{i}.png", None, "train" if i != 1 else "test", 6, 4, 5.0, 5.0, 3.0, 2.0, np.eye(4), 0.1,
                       10.0) for i in range(4)]
    cache = FakeCache([24] * 4)
    return RayBatcher(cache, cams, [0, 2, 3], Normalization(np.zeros(3), 1.0), batch_size, world_size, seed=5)


def test_ranks_are_disjoint_and_cover_the_epoch():
    b2 = make_batcher(2, batch_size=12)  # 72 pixels, 24 per step over 2 ranks -> 3 steps
    seen = [b2.pixel_indices(0, s, r) for s in range(b2.steps_per_epoch) for r in range(2)]
    flat = np.concatenate(seen)
    assert len(flat) == 72 and len(np.unique(flat)) == 72
    # the 1-process global batch is the union of the two ranks' shares
    b1 = make_batcher(1, batch_size=24)
    for s in range(3):
        union = np.concatenate([b2.pixel_indices(0, s, 0), b2.pixel_indices(0, s, 1)])
        assert np.array_equal(union, b1.pixel_indices(0, s, 0))
    # and the next epoch is ordered differently
    assert not np.array_equal(b1.pixel_indices(1, 0, 0), b1.pixel_indices(0, 0, 0))


def test_batch_colours_and_rays_match_the_pixels():
    b = make_batcher(1, batch_size=72)
    batch = b.batch(0, 0)
    # only training images (0, 2, 3), never the test image 1
    assert set(batch.image_ids.tolist()) == {0, 2, 3}
    # colours come from the cache pixel of that image
    pix = b.pixel_indices(0, 0, 0)
    k = np.searchsorted(b.starts, pix, side="right") - 1
    flat = b.cache.offsets[b.train_ids[k]] + (pix - b.starts[k])
    assert np.allclose(batch.rgb.numpy() * 255, b.cache.pixels[flat])
    # identity pose, f=5, c=(3,2): pixel (u, v) centre -> direction ((u+.5-3)/5, (v+.5-2)/5, 1)
    local = pix - b.starts[k]
    expected = np.stack([((local % 6) + 0.5 - 3) / 5, ((local // 6) + 0.5 - 2) / 5, np.ones(len(local))], -1)
    assert np.allclose(batch.rays_d.numpy(), expected, atol=1e-6)
