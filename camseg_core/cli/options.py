"""The command-line flags that several commands share, each defined once, and what they turn into.

A command adds the groups it uses (`add_model_group`, `add_device_group`, `add_sampler_group`) and single
flags by concept (`add_flags(parser, 'data', 'out', batch_size={'default': 1})`); keyword arguments change
a flag's defaults or help for that command only. `load_model(args)` builds the Segmenter the model, device
and sampler flags ask for.
"""
from __future__ import annotations

import argparse

from ..config import DEFAULT_EXPOSURE_FLOOR, PRESETS, SCHEDULERS, parse_size as config_parse_size
from ..device import PRECISIONS


def size_at_least(minimum: int):
    """Return an argparse type that parses HxW with both sides >= `minimum` (`config.parse_size`)."""
    def parse(text: str) -> tuple[int, int]:
        try:
            return config_parse_size(text, minimum)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


parse_size = size_at_least(1)  # HxW, both positive


def int_at_least(minimum: int):
    """Return an argparse type that parses an integer >= `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {value}')
        return value
    return parse


positive_int = int_at_least(1)  # batch sizes, image limits


# concept -> (flag, argparse keywords). A command changes keywords of its own flags through add_flags.
FLAGS: dict[str, tuple[str, dict]] = {
    # model
    'checkpoint': ('--checkpoint', {'help': 'checkpoint directory (config.json + model.safetensors); '
                                            'default: the shipped demo model'}),
    'preset': ('--preset', {'choices': sorted(PRESETS), 'help': 'randomly initialised model of a preset '
                                                                '(tests, timing)'}),
    # device and precision
    'device': ('--device', {'default': 'auto', 'help': 'auto, cpu, cuda or cuda:N'}),
    'precision': ('--precision', {'default': 'fp32', 'choices': sorted(PRECISIONS),
                                  'help': 'autocast dtype (default: %(default)s)'}),
    # sampler (None: the checkpoint's setting)
    'num_iter': ('--num-iter', {'type': int, 'help': 'sampler: MAR iterations'}),
    'steps': ('--steps', {'type': int, 'help': 'sampler: diffusion steps per token'}),
    'scheduler': ('--scheduler', {'choices': SCHEDULERS, 'help': "sampler: noise scheduler; default: "
                                                                 "the checkpoint's"}),
    'temperature': ('--temperature', {'type': float, 'help': 'sampler: scale of the sampling noise, in '
                                                             "(0, 10]; default: the checkpoint's"}),
    'ensemble': ('--ensemble', {'type': int, 'help': 'sampler: samples per image (majority vote); default: '
                                                     "the checkpoint's (demo: 8)"}),
    'exposure_floor': ('--exposure-floor', {'type': float, 'metavar': 'B', 'help': (
        'brighten images darker than this mean brightness (0-1) to it before segmenting '
        f'(default {DEFAULT_EXPOSURE_FLOOR}; 0: off)')}),
    'seed': ('--seed', {'type': int, 'default': 0, 'help': 'random seed (default: %(default)s)'}),
    # data and output
    'data': ('--data', {'action': 'append', 'required': True, 'metavar': 'SPEC', 'help': (
        'dataset spec, repeatable: cityscapes:ROOT:SPLIT, acdc:ROOT:CONDITION:SPLIT, or generated:ROOT '
        '(every Cityscapes val and ACDC <condition> val under ROOT)')}),
    'max_images': ('--max-images', {'type': positive_int, 'help': 'at most this many images per dataset'}),
    'out': ('--out', {'required': True, 'help': 'output directory'}),
    'size': ('--size', {'type': parse_size, 'default': (256, 512), 'metavar': 'HxW',
                        'help': 'image size HxW (default 256x512)'}),
    'batch_size': ('--batch-size', {'type': positive_int, 'default': 4,
                                    'help': 'images per batch (default: %(default)s)'}),
    'workers': ('--workers', {'type': int_at_least(0), 'default': 1,
                              'help': 'worker processes (default: %(default)s)'}),
}
SAMPLER = ('num_iter', 'steps', 'scheduler', 'temperature', 'ensemble')


def add_flags(parser, *names: str, **changes: dict) -> None:
    """Add the flags of concepts `names` to `parser` (or a group); `changes[name]` updates their keywords."""
    unknown = (set(names) | set(changes)) - set(FLAGS)
    if unknown or set(changes) - set(names):
        raise ValueError(f'unknown or unused flag concepts: {sorted(unknown | (set(changes) - set(names)))}')
    for name in names:
        flag, keywords = FLAGS[name]
        parser.add_argument(flag, **{**keywords, **changes.get(name, {})})


def add_model_group(parser: argparse.ArgumentParser, preset: bool = True, **changes: dict) -> None:
    """Add --checkpoint (and, mutually exclusive with it, --preset)."""
    group = parser.add_mutually_exclusive_group() if preset else parser
    add_flags(group, 'checkpoint', *(('preset',) if preset else ()), **changes)


def add_device_group(parser: argparse.ArgumentParser, precision: bool = True, **changes: dict) -> None:
    """Add --device (and --precision)."""
    add_flags(parser, 'device', *(('precision',) if precision else ()), **changes)


def add_sampler_group(parser: argparse.ArgumentParser, names=SAMPLER + ('exposure_floor', 'seed'),
                      **changes: dict) -> None:
    """Add the sampler overrides (num_iter, steps, scheduler, temperature, ensemble), exposure floor, seed."""
    add_flags(parser, *names, **changes)


def inference_options(args: argparse.Namespace) -> dict:
    """Return the `Segmenter` options given on the command line (those left out keep their defaults)."""
    names = SAMPLER + ('exposure_floor',)
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def load_model(args: argparse.Namespace):
    """Build the Segmenter of the model, device and sampler flags (a preset, or a checkpoint: the demo model).

    Raises ValueError or FileNotFoundError on bad values.
    """
    from ..api import Segmenter, load_segmenter

    options = inference_options(args)
    for name in ('device', 'precision'):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    if getattr(args, 'preset', None):
        segmenter = Segmenter.from_preset(args.preset, **options)  # its own seed draws the random weights
    else:
        segmenter = load_segmenter(args.checkpoint, **options)
    if getattr(args, 'seed', None) is not None:
        segmenter.set_sampler(seed=args.seed)
    return segmenter
