"""camseg-export: save a checkpoint as a model ships (float16 weights, its sampler), and its ONNX graphs.

For example
camseg-export runs/seg runs/export --ensemble 8 --temperature 0.8          # weights + config.json
camseg-export runs/seg runs/export --ensemble 8 --temperature 0.8 --onnx   # + runs/export/onnx/*.onnx
camseg-export runs/seg runs/export --onnx graphs/                          # graphs into graphs/
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoint import CheckpointError, export_pretrained, load_pretrained
from ..onnx_export import export_onnx
from ..device import PRECISIONS
from ..runtime_ort import GRAPH_DIR
from .options import add_flags


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    parser = argparse.ArgumentParser(prog='camseg-export', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', help='checkpoint directory to export')
    parser.add_argument('out', type=Path, help='directory to write (config.json + model.safetensors)')
    add_flags(parser, 'ensemble', 'temperature', 'steps',
              ensemble={'help': "default sampler's vote size (default: kept)"},
              temperature={'help': "default sampler's temperature (default: kept)"},
              steps={'help': "default sampler's diffusion steps (default: kept)"})
    parser.add_argument('--dtype', choices=sorted(PRECISIONS), default='fp16',
                        help='dtype of the stored weights (default fp16)')
    parser.add_argument('--onnx', nargs='?', const='', metavar='DIR',
                        help=f'also write the ONNX graphs of the exported weights, into DIR (default '
                             f'OUT/{GRAPH_DIR}, where Segmenter(runtime="onnxruntime") finds them)')
    return parser


def main(argv=None) -> int:
    """Entry point of camseg-export."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        out = export_pretrained(args.source, args.out, ensemble=args.ensemble, dtype=PRECISIONS[args.dtype],
                                temperature=args.temperature, steps=args.steps)
        print(f'wrote {out}')
        if args.onnx is not None:
            model, _ = load_pretrained(out)  # the weights as stored, so the graphs match what loads
            graphs = export_onnx(model, Path(args.onnx) if args.onnx else out / GRAPH_DIR)
            print(f'wrote ONNX graphs to {graphs}')
    except (CheckpointError, ValueError) as e:
        parser.exit(2, f'camseg-export: error: {e}\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
