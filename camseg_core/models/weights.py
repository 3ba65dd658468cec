"""Whether a state dict fits a model: the one check of every weight load (checkpoints, autoencoder files)."""
from __future__ import annotations


def state_dict_mismatch(own: dict, state: dict) -> str:
    """Describe the keys where `state` does not fit `own` (missing, unexpected, wrong shape); '' if none."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if not (missing or unexpected or wrong):
        return ''
    return (f'missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]} '
            f'({len(missing)} / {len(unexpected)} / {len(wrong)} in all)')
