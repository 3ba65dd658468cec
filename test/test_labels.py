"""Class table, labelId -> trainId map and the maskige codec."""
import numpy as np
import torch

from camseg_core import labels as L


def test_class_table():
    assert L.NUM_CLASSES == 19
    assert L.CLASS_NAMES[0] == 'road' and L.CLASS_NAMES[18] == 'bicycle'
    assert L.PALETTE.shape == (19, 3)
    assert len({tuple(c) for c in L.PALETTE}) == 19  # distinct colours decode unambiguously


def test_label_id_map_is_complete():
    ids = np.arange(256, dtype=np.uint8)
    train = L.label_ids_to_train_ids(ids)
    assert train[7] == 0 and train[26] == 13 and train[33] == 18
    assert train[0] == 255 and train[9] == 255 and train[34] == 255 and train[255] == 255
    assert sorted(set(train.tolist()) - {255}) == list(range(19))


def test_encode_decode_exact_on_clean_colours(rng):
    ids = torch.from_numpy(rng.integers(0, 19, (2, 31, 47), dtype=np.uint8))
    img = L.encode_maskige(ids)
    assert img.shape == (2, 3, 31, 47) and img.min() >= -1 and img.max() <= 1
    back, conf = L.decode_maskige(img)
    assert torch.equal(back, ids)
    assert torch.allclose(conf, torch.ones_like(conf))


def test_ignore_is_black_and_colorize_matches():
    ids = np.array([[0, 255], [13, 18]], np.uint8)
    rgb = L.colorize(ids)
    assert tuple(rgb[0, 1]) == (0, 0, 0) and tuple(rgb[1, 0]) == (0, 0, 142)
    enc = L.encode_maskige(torch.from_numpy(ids)[None])
    assert torch.allclose(enc[0, :, 0, 1], torch.full((3,), -1.0))


def test_decode_degrades_gracefully_on_noise(rng):
    ids = torch.from_numpy(rng.integers(0, 19, (1, 64, 64), dtype=np.uint8))
    img = L.encode_maskige(ids)
    accs, confs = [], []
    for sigma in (0.02, 0.1, 0.3):
        noisy = img + sigma * torch.from_numpy(rng.normal(size=img.shape)).float()
        back, conf = L.decode_maskige(noisy)
        accs.append((back == ids).float().mean().item())
        confs.append(conf.mean().item())
        assert conf.min() >= 0 and conf.max() <= 1
    assert accs[0] > 0.99 and accs[0] >= accs[1] >= accs[2]
    assert confs[0] > confs[1] > confs[2]  # confidence falls as colours drift off the palette
    wrong = back != ids
    assert conf[wrong].mean() < conf[~wrong].mean()  # and is lower where the decode is wrong


def test_black_decodes_to_void_not_truck():
    ids = torch.tensor([[[255, 14, 13, 0]]], dtype=torch.uint8)  # void, truck (0,0,70), car, road
    back, conf = L.decode_maskige(L.encode_maskige(ids))
    assert back.tolist() == ids.tolist()
    assert torch.allclose(conf, torch.ones_like(conf))
    dark = torch.full((1, 3, 1, 1), -1.0)
    dark[0, 2] = 20 / 127.5 - 1  # (0, 0, 20): nearer black than truck
    assert L.decode_maskige(dark)[0].item() == L.IGNORE_INDEX


def test_logits_agree_with_decoding_and_targets(rng):
    ids = torch.from_numpy(rng.integers(0, 20, (2, 9, 11), dtype=np.uint8))
    ids[ids == 19] = L.IGNORE_INDEX
    img = L.encode_maskige(ids) + 0.05 * torch.from_numpy(rng.normal(size=(2, 3, 9, 11))).float()
    logits = L.maskige_logits(img.clamp(-1, 1))
    assert logits.shape == (2, L.NUM_CLASSES + 1, 9, 11)
    slots = L.class_targets(ids)
    assert slots.max() == L.VOID_SLOT and torch.equal(slots[ids != 255], ids[ids != 255].long())
    back, _ = L.decode_maskige(img)
    assert torch.equal(L.class_targets(back), logits.argmax(1))


def test_token_class_mix_counts_labelled_pixels_per_token():
    labels = torch.full((1, 4, 4), 255, dtype=torch.uint8)
    labels[0, :2, :2] = torch.tensor([[0, 0], [0, 13]])  # token (0, 0): three road, one car
    labels[0, :2, 2:] = 5  # token (0, 1): all pole
    labels[0, 2:, :2] = torch.tensor([[255, 255], [255, 8]])  # token (1, 0): one labelled pixel of three void
    mix = L.token_class_mix(labels, (2, 2))  # token (1, 1) stays all void
    assert mix.shape == (1, 4, L.NUM_CLASSES)
    assert torch.allclose(mix[0, 0, [0, 13]], torch.tensor([0.75, 0.25])) and mix[0, 0].sum() == 1
    assert mix[0, 1, 5] == 1 and mix[0, 2, 8] == 1 and mix[0, 3].sum() == 0
