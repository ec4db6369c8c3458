"""One focus decision for all channels: weights, the deciding channel, normalisation."""
import numpy as np
import pytest

from napari_focus_stack import FocusStacker
from napari_focus_stack._backend import get_backend
from napari_focus_stack.channels import channel_weights, resolve_channel, spread_weights
from napari_focus_stack.errors import ParameterError
from napari_focus_stack.synthetic import make_stack


def test_resolve_channel_by_index_and_name():
    names = ["DAPI", "GFP"]
    assert resolve_channel(None, 2, names) is None
    assert resolve_channel(1, 2, names) == 1
    assert resolve_channel(-1, 2, names) == 1
    assert resolve_channel("0", 2, names) == 0
    assert resolve_channel("gfp", 2, names) == 1
    with pytest.raises(ParameterError, match="indices 0 to 1"):
        resolve_channel(2, 2, names)
    with pytest.raises(ParameterError, match="'DAPI', 'GFP'"):
        resolve_channel("RFP", 2, names)
    with pytest.raises(ParameterError, match="no channel names"):
        resolve_channel("RFP", 2, None)


def test_spread_weights_equalise_a_bright_channel():
    rng = np.random.default_rng(0)
    dim = rng.random((64, 64)).astype(np.float32)
    frame = np.stack([dim, 40 * dim + 3], axis=-1)
    w = spread_weights(frame)
    assert w.sum() == pytest.approx(1)
    band = np.stack([dim - dim.mean(), 40 * (dim - dim.mean())], axis=-1)
    # each channel then has the same say in the focus energy
    bk = get_backend("cpu")
    e0 = bk.block_energy(band, 1, (w[0], 0.0)).sum()
    e1 = bk.block_energy(band, 1, (0.0, w[1])).sum()
    assert e0 == pytest.approx(e1, rel=1e-3)


def test_channel_weights_one_hot_and_defaults():
    assert channel_weights((8, 8, 3)) is None  # the colour-photo default
    assert channel_weights((8, 8)) is None
    assert channel_weights((8, 8, 3), channel=2) == (0.0, 0.0, 1.0)
    assert channel_weights((8, 8, 2), channel="b", names=["a", "b"]) == (0.0, 1.0)
    with pytest.raises(ParameterError):
        channel_weights((8, 8), channel=1)


def test_channel_option_validation():
    assert FocusStacker(channel=1).channel == 1
    assert FocusStacker(channel="GFP").channel == "GFP"
    with pytest.raises(ParameterError, match="channel"):
        FocusStacker(channel=1.5)


def _half_textured(seed: int):
    """Two channels, same relief: channel 0 textured on the left only, channel 1 on the right only."""
    st = make_stack("rocks", shape=(96, 128), n_frames=5, seed=seed, gray=True, dtype=np.uint16, breathing=0,
                    max_rotation_deg=0, max_shift=0, gain_range=0)
    frames = np.stack(st.frames).astype(np.float32) / 65535
    flat = np.full_like(frames, frames.mean())
    left = np.zeros(frames.shape[1:], bool)
    left[:, :64] = True
    ch0 = np.where(left, frames, flat)
    ch1 = np.where(left, flat, frames)
    return st, left, ch0, ch1


def test_deciding_channel_drives_the_decision():
    st, left, ch0, ch1 = _half_textured(1)
    zcyx = np.stack([ch0, ch1], axis=1)
    core = np.s_[16:-16]
    by0 = FocusStacker(device="cpu", align="none", channel=0).stack_nd(zcyx, "ZCYX")
    by1 = FocusStacker(device="cpu", align="none").stack_nd(zcyx, "ZCYX", channel=1)
    c0, c1 = by0.confidence, by1.confidence
    assert np.median(c0[core][:, 8:56]) > 0.2 and np.median(c0[core][:, 72:120]) < 0.05
    assert np.median(c1[core][:, 72:120]) > 0.2 and np.median(c1[core][:, 8:56]) < 0.05
    assert by0.reports[0].channel_weights == [1.0, 0.0]


def test_normalised_channels_let_a_dim_channel_count():
    st, left, ch0, ch1 = _half_textured(2)
    zcyx = np.stack([ch0, 0.01 * ch1], axis=1)  # channel 1 is a hundred times dimmer
    res = FocusStacker(device="cpu", align="none").stack_nd(zcyx, "ZCYX")
    conf = res.confidence[16:-16]
    # both halves are decided with confidence, though only the dim channel has texture on the right
    assert np.median(conf[:, 72:120]) > 0.5 * np.median(conf[:, 8:56]) > 0.1
    ok = np.abs(res.height_raw - st.depth_index) <= 1
    assert ok[16:-16, 72:120].mean() > 0.9
