"""The KL autoencoder loads locally stored pretrained weights in the diffusers and LDM layouts."""
import re

import pytest
import torch
from safetensors.torch import save_file

from camseg_core import preset
from camseg_core.config import AutoencoderConfig
from camseg_core.models.autoencoder import KLAutoencoder


def small_config(**kw):
    return AutoencoderConfig(base_channels=8, channel_mult=(1, 2, 2, 2), layers_per_block=1,
                             norm_num_groups=4, **kw)


def to_ldm_layout(state: dict, levels: int) -> dict:
    """Rename diffusers AutoencoderKL keys to the original latent-diffusion (LDM) checkpoint layout."""
    out = {}
    for key, value in state.items():
        k = key.replace('conv_shortcut', 'nin_shortcut').replace('conv_norm_out', 'norm_out')
        k = re.sub(r'encoder\.down_blocks\.(\d+)\.resnets\.', r'encoder.down.\1.block.', k)
        k = re.sub(r'encoder\.down_blocks\.(\d+)\.downsamplers\.0\.', r'encoder.down.\1.downsample.', k)
        k = re.sub(r'decoder\.up_blocks\.(\d+)\.resnets\.',
                   lambda m: f'decoder.up.{levels - 1 - int(m[1])}.block.', k)
        k = re.sub(r'decoder\.up_blocks\.(\d+)\.upsamplers\.0\.',
                   lambda m: f'decoder.up.{levels - 1 - int(m[1])}.upsample.', k)
        k = re.sub(r'mid_block\.resnets\.(\d)\.', lambda m: f'mid.block_{int(m[1]) + 1}.', k)
        attn = {'group_norm': 'norm', 'to_q': 'q', 'to_k': 'k', 'to_v': 'v', 'to_out.0': 'proj_out'}
        for new, old in attn.items():
            if f'mid_block.attentions.0.{new}.' in k:
                k = k.replace(f'mid_block.attentions.0.{new}.', f'mid.attn_1.{old}.')
                if old != 'norm' and value.ndim == 2:
                    value = value[:, :, None, None]  # LDM attention projections are 1x1 convolutions
        out['first_stage_model.' + k] = value
    return out


@pytest.fixture
def trained_like():
    torch.manual_seed(1)
    ae = KLAutoencoder(small_config())
    with torch.no_grad():
        for p in ae.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return ae


def assert_same_weights(a: KLAutoencoder, b: KLAutoencoder):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_loads_diffusers_directory(trained_like, tmp_path):
    trained_like.vae.save_pretrained(tmp_path / 'vae', safe_serialization=True)
    fresh = KLAutoencoder(small_config())
    fresh.load_pretrained(tmp_path / 'vae')
    assert_same_weights(trained_like, fresh)


def test_loads_ldm_layout_safetensors(trained_like, tmp_path):
    path = tmp_path / 'kl-f8.safetensors'
    ldm = to_ldm_layout(trained_like.vae.state_dict(), 4)
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(path))
    fresh = KLAutoencoder(small_config())
    fresh.load_pretrained(path)
    assert_same_weights(trained_like, fresh)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(trained_like.encode(x), fresh.encode(x))


def test_mismatched_weights_name_the_keys(trained_like, tmp_path):
    trained_like.vae.save_pretrained(tmp_path / 'vae', safe_serialization=True)
    other = KLAutoencoder(small_config(latent_channels=4))
    with pytest.raises(ValueError, match=r'do not fit.*wrong shape \[.*quant_conv'):
        other.load_pretrained(tmp_path / 'vae')


def test_pickle_and_missing_files_are_refused(tmp_path):
    ae = KLAutoencoder(small_config())
    torch.save({}, tmp_path / 'vae.ckpt')
    with pytest.raises(ValueError, match='only .safetensors'):
        ae.load_pretrained(tmp_path / 'vae.ckpt')
    with pytest.raises(FileNotFoundError, match='no such'):
        ae.load_pretrained(tmp_path / 'none.safetensors')


def test_latent_scale_lives_in_the_config():
    ae = KLAutoencoder(preset('base').autoencoder)
    assert ae.vae.config.scaling_factor == pytest.approx(0.2325) and ae.config.stride == 16


def test_class_losses_vanish_on_perfect_scores_and_weigh_rare_classes():
    import torch
    from camseg_core.models.autoencoder import class_losses
    targets = torch.zeros(1, 8, 8, dtype=torch.long)
    targets[0, 0, 0] = 5  # one rare pixel among 63 of class 0
    perfect = 30 * torch.nn.functional.one_hot(targets, 20).permute(0, 3, 1, 2).float()
    ce, dice = class_losses(perfect, targets)
    assert ce.item() < 1e-6 and dice.item() < 1e-3
    miss_rare = perfect.clone()
    miss_rare[0, :, 0, 0] = perfect[0, :, 1, 1]  # the rare pixel scored as class 0
    miss_common = perfect.clone()
    miss_common[0, :, 1, 1] = perfect[0, :, 0, 0]  # one common pixel scored as class 5
    assert class_losses(miss_rare, targets)[0] > 3 * class_losses(miss_common, targets)[0]
