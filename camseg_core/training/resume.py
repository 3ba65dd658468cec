"""What a resumed run must share with the run it continues.

A training state stores the settings that decide what the run computes; `--resume` compares them with the
command's and stops, naming every difference, unless the command allows those changes explicitly.
"""
from __future__ import annotations

import dataclasses
import json

TRAIN_KEYS = ('steps', 'batch_size', 'lr', 'weight_decay', 'betas', 'warmup', 'schedule', 'ema', 'clip',
              'precision', 'seed')  # TrainConfig fields that change the optimisation (not logging, saving)
UNCHECKED_OPTIONS = ('workers', 'init', 'image_size')  # speed only; weights and size come from the state
FIXED = ('stage', 'preset', 'image_size', 'image_stem', 'pixel_stem', 'decoder_only')  # from the state


def run_settings(config, opts, data: list[str], world: int, image_size) -> dict:
    """Return the settings of a run (JSON types): optimisation, stage options, data, processes, size."""
    train = dataclasses.asdict(config)
    settings = {k: train[k] for k in TRAIN_KEYS}
    settings.update({k: v for k, v in dataclasses.asdict(opts).items() if k not in UNCHECKED_OPTIONS})
    settings.update(data=list(data), world_size=world, image_size=list(image_size))
    return json.loads(json.dumps(settings, default=str))


def saved_settings(header: dict) -> dict:
    """Return the settings stored in a training state header (older states: what they recorded)."""
    if 'settings' in header:
        return header['settings']
    train = header.get('train', {})
    old = {k: train[k] for k in TRAIN_KEYS if k in train}
    old.update({k: header[k] for k in ('stage', 'data', 'world_size') if k in header})
    if 'model_config' in header:
        old['image_size'] = list(header['model_config']['image_size'])
    return old


def check_resume(out, saved: dict, now: dict, allow: set[str]) -> list[str]:
    """Raise ValueError naming the settings that differ and are not in `allow`; return the allowed ones.

    Only settings recorded in `saved` are compared. Unknown names in `allow` are an error too.
    """
    unknown = sorted(set(allow) - set(now))
    if unknown:
        raise ValueError(f'--allow-change: unknown setting(s) {", ".join(unknown)}; choose from '
                         f'{", ".join(sorted(now))}')
    changed = [k for k in now if k in saved and saved[k] != now[k]]
    fixed = [k for k in changed if k in FIXED]
    if fixed:
        what = ', '.join(f'{k} ({saved[k]!r} -> {now[k]!r})' for k in fixed)
        raise ValueError(f'cannot resume {out}: this command changes {what}, which the saved model fixes; '
                         f'start a new run with --init {out} instead')
    refused = [k for k in changed if k not in allow]
    if refused:
        what = ', '.join(f'{k} ({saved[k]!r} -> {now[k]!r})' for k in refused)
        hint = ''
        if 'precision' in refused and now['precision'] == 'fp16':
            hint = (f' Resuming into --precision fp16 needs a gradient scaler state, and the run was saved '
                    f'with {saved["precision"]} (no scaler state): allowing precision starts a fresh scaler.')
        raise ValueError(f'cannot resume {out}: this command changes {what}.{hint} Run it with the saved '
                         f'settings, or pass --allow-change {",".join(refused)} to continue with the new '
                         f'ones.')
    return changed
