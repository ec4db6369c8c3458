"""Height maps fit to measure: confident depths kept, the rest filled edge-aware."""
import numpy as np
import pytest
import scipy.ndimage as ndi

from napari_focus_stack import FocusStacker
from napari_focus_stack._backend import get_backend
from napari_focus_stack.depth import CONFIDENT, fill_depth, regularise_depth, to_height
from napari_focus_stack.synthetic import make_hyperstack

Z_STEP = 0.5  # micrometres


def test_confident_pixels_are_kept_and_the_rest_filled(backend):
    rng = np.random.default_rng(0)
    depth = rng.uniform(2, 3, (64, 80)).astype(np.float32)
    conf = np.full((64, 80), CONFIDENT, np.float32)
    hole = np.zeros((64, 80), bool)
    hole[20:40, 30:50] = True
    depth[hole] = 9.0  # what noise makes of a plain patch
    conf[hole] = 0.0
    out = backend.to_numpy(regularise_depth(backend, backend.asarray(depth), backend.asarray(conf)))
    np.testing.assert_array_equal(out[~hole], depth[~hole])
    assert 2 <= out[hole].min() and out[hole].max() <= 3


def test_fill_interpolates_a_hole_in_a_slope():
    # the nearest confident depths fill a hole (a wide mean would level a slope)
    bk = get_backend("cpu")
    yy, xx = np.mgrid[:96, :128].astype(np.float32)
    plane = 1 + 0.03 * xx + 0.02 * yy
    weights = np.ones_like(plane)
    weights[30:60, 40:80] = 0  # nothing confident here
    err = np.abs(fill_depth(bk, plane, weights) - plane)[30:60, 40:80]
    assert err.max() < 0.4 and err.mean() < 0.2  # the hole spans 1.8 frames


def test_far_from_anything_confident_one_surface_wins_not_a_blend(backend):
    # a plain field reached only from afar by two surfaces, 2 and 8 frames deep: it takes the depth of the one
    # that weighs more there (the larger), not their mean (about 4.4), which neither surface has
    depth = np.zeros((96, 128), np.float32)
    weights = np.zeros((96, 128), np.float32)
    depth[:, :12], weights[:, :12] = 2.0, 1.0  # the wider strip
    depth[:, -8:], weights[:, -8:] = 8.0, 1.0
    out = backend.to_numpy(fill_depth(backend, backend.asarray(depth), backend.asarray(weights)))
    middle = out[:, 40:88]
    assert np.abs(middle - 2.0).max() < 1.0, (middle.min(), middle.max())
    # beside each surface, where it is near, its own depth holds
    assert np.abs(out[:, 12:16] - 2.0).max() < 0.5 and (out[:, -9] > 7.0).all()


def test_nothing_confident_gives_a_flat_map():
    bk = get_backend("cpu")
    depth = np.random.default_rng(1).uniform(0, 5, (32, 32)).astype(np.float32)
    out = regularise_depth(bk, depth, np.zeros_like(depth))
    assert np.ptp(out) < 1e-4


def _plain_disk_on_slope():
    """Textured sloped background (frames 1-3) under a plain raised disk (frame 8): only its outline is visible."""
    rng = np.random.default_rng(0)
    h, w = 160, 200
    background = ndi.gaussian_filter(rng.random((h, w)).astype(np.float32), 0.8) * 0.6 + 0.2
    yy, xx = np.mgrid[:h, :w]
    disk = (yy - 80) ** 2 + (xx - 100) ** 2 < 45**2
    d_bg = 1 + 2 * xx / w
    frames = []
    for z in range(10):
        b = np.zeros_like(background)
        for level in (1, 2, 3):
            share = np.clip(1 - np.abs(d_bg - level), 0, 1)
            b += share * ndi.gaussian_filter(background, 0.3 + 0.9 * abs(z - level))
        m = ndi.gaussian_filter(disk.astype(np.float32), 0.3 + 0.9 * abs(z - 8))
        frames.append(b * (1 - m) + 0.9 * m)
    inner = (yy - 80) ** 2 + (xx - 100) ** 2 < 38**2
    return np.stack(frames).astype(np.float32), np.where(disk, 8.0, d_bg), inner


def test_plain_object_is_filled_from_its_own_outline():
    frames, truth, inner = _plain_disk_on_slope()
    res = FocusStacker(device="cpu", align="none").stack(frames)
    raw_ok = (np.abs(res.depth_raw - truth) <= 1)[inner].mean()
    ok = (np.abs(res.depth - truth) <= 1)[inner].mean()
    blind = regularise_depth(get_backend("cpu"), res.depth_raw, res.confidence, None)
    blind_ok = (np.abs(blind - truth) <= 1)[inner].mean()
    assert ok > 0.95 and ok > blind_ok + 0.1 and ok > raw_ok + 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_smooth_surface_with_plain_patches(seed):
    hs = make_hyperstack("patches", shape=(160, 192), n_z=10, n_c=2, seed=seed, objects=False)
    res = FocusStacker(device="cpu").stack_nd(hs.data, "TCZYX", z_step=Z_STEP)
    truth = Z_STEP * hs.depth_index
    ok = np.abs(res.height[0] - truth) <= Z_STEP
    raw_ok = np.abs(res.height_raw[0] - truth) <= Z_STEP
    plain = ~hs.texture_mask
    assert plain.mean() > 0.15  # the scene really has untextured patches
    assert ok.mean() >= 0.8
    assert ok[hs.texture_mask].mean() >= 0.9
    assert ok[plain].mean() > raw_ok[plain].mean() + 0.05


@pytest.mark.parametrize("scene, seed", [("rocks", 5), ("pcb", 6)])
def test_textured_scenes_with_objects(scene, seed):
    hs = make_hyperstack(scene, shape=(160, 192), n_z=10, n_c=1, seed=seed)
    res = FocusStacker(device="cpu").stack_nd(hs.data[:, 0], "TZYX", z_step=Z_STEP)
    ok = np.abs(res.height[0] - Z_STEP * hs.depth_index) <= Z_STEP
    assert ok[hs.texture_mask].mean() >= 0.9


def test_to_height():
    d = np.array([[0.0, 1.5]], np.float32)
    np.testing.assert_allclose(to_height(d, 0.5, 10.0), [[10.0, 10.75]])
    np.testing.assert_array_equal(to_height(d, None), d)


def _plain_disk_in_front_of_a_plain_backdrop(seed=0):
    """A plain dark disk (depth 0) before a plain backdrop (depth 7) with a few specks of dust.

    What a focus measure makes of it: the disk's outline is confident at the
    disk's depth on both sides of the edge (a wide window sees the edge from
    outside too), the specks at the backdrop's, everything else is noise.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:128, :160]
    r = np.hypot(yy - 64, xx - 70)
    guide = np.where(r < 30, 0.1, 0.6).astype(np.float32) + 0.003 * rng.standard_normal((128, 160)).astype(np.float32)
    depth = rng.uniform(0, 7, (128, 160)).astype(np.float32)  # noise where nothing is confident
    conf = np.zeros((128, 160), np.float32)
    outline = np.abs(r - 30) < 3
    depth[outline], conf[outline] = 0.0, 0.5
    specks = (rng.random((128, 160)) < 0.004) & (r > 36)
    depth[specks], conf[specks] = 7.0, 0.5
    return depth, conf, guide, r


def test_plain_regions_take_their_own_depth_not_their_neighbours_outline(backend):
    depth, conf, guide, r = _plain_disk_in_front_of_a_plain_backdrop()
    out = backend.to_numpy(regularise_depth(backend, backend.asarray(depth), backend.asarray(conf),
                                            backend.asarray(guide), radius=8, edge_reach=6))
    # the disk has nothing but its outline; the backdrop has its specks, and the outline is the disk's
    assert np.abs(out[r < 24]).max() < 0.5
    beside = (r > 40) & (r < 56)  # the backdrop next to the disk, past the guided filter's window
    assert (out[beside] > 6).mean() > 0.9  # within a frame of its own depth


def test_board_plain_parts_take_the_depth_of_their_own_surface():
    # chips with plain tops stand on a board before a plain backdrop; radius and
    # smoothing are halved with the frame size (the measure reaches half as far)
    from napari_focus_stack.synthetic import make_stack

    n = 6
    for seed in (0, 4):
        st = make_stack("board", shape=(192, 256), n_frames=n, seed=seed)
        res = FocusStacker(device="cpu", radius=4, smoothing=2).stack(st.frames)
        di = st.depth_index
        inner = np.zeros(di.shape, bool)
        inner[8:-8, 8:-8] = True
        chips = ndi.binary_erosion(di < 0.5, iterations=6) & inner  # their plain tops
        backdrop = ndi.binary_erosion(di > n - 1.5, iterations=3) & inner
        ok = np.abs(res.depth - di) <= 1
        raw_ok = np.abs(res.depth_raw - di) <= 1
        # the chip tops are not quite plain: with the warps as sharp as Lanczos-4 the raw map finds their
        # frame in 70-83 % of them (52-59 % before), so the fill is held to beating it on all plain parts
        plain = chips | backdrop
        assert ok[chips].mean() > 0.7 and ok[plain].mean() > raw_ok[plain].mean() + 0.5
        assert ok[backdrop].mean() > 0.8 and ok[backdrop].mean() > raw_ok[backdrop].mean() + 0.5
        assert ok[inner].mean() > 0.9
        # the confidence says where the depth is a guess
        textured = st.texture_mask & inner & ~chips & ~backdrop
        assert np.median(res.confidence[chips]) < 0.01 and np.median(res.confidence[backdrop]) < 0.01
        assert np.median(res.confidence[textured]) > 0.1


def test_depth_regularisation_leaves_the_fused_image_alone(small_stack):
    res = FocusStacker(device="cpu").stack(small_stack.frames)
    image = res.image.copy()
    assert not np.array_equal(res.depth, res.depth_raw)  # the regularised map is computed now ...
    np.testing.assert_array_equal(res.image, image)  # ... from the image, which it does not change
    again = FocusStacker(device="cpu").stack(small_stack.frames)
    np.testing.assert_array_equal(again.image, image)  # and without it the image is the same


def test_a_peak_the_fusion_did_not_keep_is_a_guess():
    # the tracker's confidence drops where the fused result's detail (its small-window energy) is a
    # fraction of the chosen frame's: the fusion averaged what it took for noise
    from napari_focus_stack.focus import KEPT, DepthTracker

    bk = get_backend("cpu")
    rng = np.random.default_rng(0)
    shape = (32, 40)
    tracker = DepthTracker(bk, shape)
    measures = [rng.uniform(0.5, 1.0, shape).astype(np.float32) for _ in range(4)]
    measures[2] *= 8  # frame 2 stands out everywhere
    for i, m in enumerate(measures):
        tracker.update(i, m, local=m)
    depth, conf = tracker.result()
    assert np.all(depth.round() == 2) and conf.min() > 0.3
    same_depth, kept_all = tracker.result(kept=tracker.local.copy())  # the fusion kept frame 2's detail
    np.testing.assert_array_equal(same_depth, depth)
    np.testing.assert_allclose(kept_all, conf)
    half = tracker.local.copy()
    half[:, :20] *= KEPT[0] / 2  # on the left the fusion kept little of it
    _, partly = tracker.result(kept=half)
    assert partly[:, :20].max() == 0.0
    np.testing.assert_allclose(partly[:, 20:], conf[:, 20:])


def test_plain_parts_the_fusion_averaged_are_filled_from_their_surroundings(monkeypatch):
    # the board scene's plain parts (chips, backdrop, print): the frames' incoherent detail there is averaged
    # by the fusion, and the depth it seemed to show is taken for a guess and filled
    import napari_focus_stack.focus as focus
    from napari_focus_stack.synthetic import make_stack

    plain_ok = {}
    for check in ("kept", "without"):
        if check == "without":
            monkeypatch.setattr(focus, "KEPT", (-2.0, -1.0))  # the factor is 1 everywhere
        rates = []
        for seed in (0, 2):
            st = make_stack("board", shape=(384, 512), n_frames=8, seed=seed)
            res = FocusStacker(device="cpu").stack(st.frames)
            ok = np.abs(res.depth - st.depth_index) <= 1
            rates.append(ok[~st.texture_mask].mean())
        plain_ok[check] = np.mean(rates)
    # +0.017 when the bicubic warps took the fine detail (and noise) out of the frames they moved, +0.009 since
    # they are prefiltered to keep it: fewer of those frames' peaks are lost in the fusion's average
    assert plain_ok["kept"] > plain_ok["without"] + 0.005 and plain_ok["kept"] > 0.94, plain_ok
