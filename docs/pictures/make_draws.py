"""Regenerate the README's pictures of one layer (``convcalc draw``).

Each picture is ``convcalc draw … --at POS --svg``, a one-frame SVG whose
static frame is that output position, rendered to PNG by rsvg-convert
(librsvg2-bin), then cut to 32 colours with Pillow where it is installed
(a few KB each).  Run from anywhere: ``python docs/pictures/make_draws.py``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# (file name, layer, input, output position)
DRAWS = [
    ("draw_tconv.png", "tconv:1,k=3,s=2,p=1,op=1", "1x1x3x3", "1,1"),
    ("draw_dilated.png", "conv:1,k=3,d=2,p=same", "1x1x7x7", "3,3"),
]
WIDTH = 480  # pixels: small files, still readable


def _shrink(path: str) -> None:
    """Flat colours and anti-aliased text: 32 colours look the same, at a fifth the size."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=32, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main() -> None:
    exe = shutil.which("rsvg-convert")
    if exe is None:
        sys.exit("rsvg-convert is not installed (apt-get install librsvg2-bin)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, layer, shape, at in DRAWS:
            svg = os.path.join(tmp, name.replace(".png", ".svg"))
            subprocess.run([sys.executable, "-m", "convcalc", "draw", layer, "-i", shape,
                            "--at", at, "--svg", svg], check=True, stdout=subprocess.DEVNULL)
            out = os.path.join(HERE, name)
            subprocess.run([exe, "-w", str(WIDTH), svg, "-o", out], check=True)
            _shrink(out)
            print(f"{out}: {os.path.getsize(out):,} bytes  ({layer} on {shape}, output {at})")


if __name__ == "__main__":
    main()
