"""camseg-synth: write synthetic street scenes in the Cityscapes / ACDC layouts, or a sample drive bag.

Dataset (--out ROOT): scene i of a run is rendered once and written in every requested condition:
  clear -> ROOT/leftImg8bit/<split>/synth<seed>/synth<seed>_000000_<i:06d>_leftImg8bit.png
           ROOT/gtFine/<split>/synth<seed>/synth<seed>_000000_<i:06d>_gtFine_labelIds.png
  other -> ROOT/rgb_anon/<cond>/<split>/SYN<seed>/SYN<seed>_frame_<i:06d>_rgb_anon.png
           ROOT/gt/<cond>/<split>/SYN<seed>/SYN<seed>_frame_<i:06d>_gt_labelIds.png
           ROOT/rgb_anon/<cond>/<split>_ref/SYN<seed>/SYN<seed>_frame_<i:06d>_rgb_ref_anon.png (clear view)
The condition 'fog' expands to three ACDC conditions: 'fog' (beta 0.01 /m), 'fog_beta0.005' and
'fog_beta0.02'; a single one can be asked for by name (e.g. --conditions fog_beta0.02).
Each scene draws from its own random stream ([seed, i]), so `--workers N` renders scenes in N processes
and writes exactly the files that one process writes.

Bag (--bag PATH): a drive through clear, fog, snow and night stretches; see camseg_core.data.bagwriter.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from camseg_core.data.synth.writer import expand_conditions, write_dataset

from .options import add_flags


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    p = argparse.ArgumentParser(prog='camseg-synth', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, 'out', out={'type': Path, 'required': False,
                             'help': 'dataset root to write (Cityscapes + ACDC layouts)'})
    p.add_argument('--num', type=int, default=100, help='scenes to render (each in every condition)')
    p.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    add_flags(p, 'seed', 'size', 'workers', seed={'help': 'scene seed (default: %(default)s)'},
              size={'help': 'image size HxW, at least 16x16 (default 256x512)'},
              workers={'help': 'render scenes in this many processes (the files are the same as with 1)'})
    p.add_argument('--conditions', default='clear,fog,snow,rain,night',
                   help='comma list of clear, fog, fog_beta<B>, snow, rain, night')
    p.add_argument('--bag', type=Path, help='also (or only) write a sample drive rosbag2 here')
    p.add_argument('--frames', type=int, default=80,
                   help='bag frames (a multiple of 4: clear/fog/snow/night)')
    p.add_argument('--fps', type=float, default=10.0, help='bag frame rate')
    p.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'), help='bag storage plugin')
    return p


def main(argv=None) -> int:
    """Entry point of camseg-synth."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.out is None and args.bag is None:
        p.error('give --out ROOT and/or --bag PATH')
    if args.num < 0:
        p.error(f'--num must be >= 0, got {args.num}')
    try:
        conditions = expand_conditions(args.conditions)
        if args.out is not None:
            write_dataset(args.out, args.num, args.split, args.seed, args.size, conditions,
                          workers=args.workers)
        if args.bag is not None:  # rosbags only here: the datasets need none (a bare GPU machine has none)
            from camseg_core.data.bagwriter import DriveConfig, write_drive_bag
            cfg = DriveConfig(frames=args.frames, fps=args.fps, height=args.size[0], width=args.size[1],
                              storage=args.storage, seed=args.seed)
            info = write_drive_bag(args.bag, cfg)
            print(f'wrote {args.bag} ({info["frames"]} frames); stretches in {args.bag / "stretches.json"}')
    except (ValueError, FileExistsError) as e:
        p.error(str(e))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
