"""Regenerate the README's architecture diagrams: each built-in stack drawn by
``convcalc shape @NAME --svg`` and rendered to a small PNG with rsvg-convert.

    python docs/pictures/make_diagrams.py

Needs convcalc installed and rsvg-convert (Debian: librsvg2-bin).  Pillow,
where installed, cuts each PNG to a 64-colour palette so it stays small.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from click.testing import CliRunner

from convcalc.cli import cli

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["unet_valid", "resnet50", "dcgan", "densenet121"]
WIDTH = 1100  # pixels at most; the SVGs are 420 to 1,400 wide


def render(name: str, folder: str) -> str:
    svg = os.path.join(folder, f"{name}.svg")
    r = CliRunner().invoke(cli, ["shape", f"@{name}", "--svg", svg, "--format", "json"])
    if r.exit_code != 0:
        sys.exit(f"convcalc shape @{name} --svg failed: {r.output}")
    png = os.path.join(folder, f"{name}.png")
    width = int(open(svg, encoding="utf-8").read().split('width="', 1)[1].split('"', 1)[0])
    subprocess.run(["rsvg-convert", "-w", str(min(width, WIDTH)), "-o", png, svg], check=True)
    return png


def shrink(png: str) -> bytes:
    try:
        from PIL import Image
    except ImportError:
        return open(png, "rb").read()
    import io
    img = Image.open(png).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main() -> None:
    if shutil.which("rsvg-convert") is None:
        sys.exit("rsvg-convert is not installed (Debian: apt-get install librsvg2-bin)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            data = shrink(render(name, tmp))
            target = os.path.join(HERE, f"{name}.png")
            tmp_png = target + ".tmp"  # a rename: a failed run leaves the old picture
            with open(tmp_png, "wb") as f:
                f.write(data)
            os.replace(tmp_png, target)
            print(f"{target}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
