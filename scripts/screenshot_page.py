"""Render an HTML page (e.g. `elmokit cells`' cells.html) in headless Chromium, save a screenshot, and check that
it shows coloured text: prints one JSON line with the share of red and of blue pixels; exits 1 if the page
rendered blank or uncoloured.

    python scripts/screenshot_page.py runs/cells/cells.html --out runs/cells/screenshot.png

Needs a Chromium (Debian: apt-get install chromium); looks for chromium, chromium-browser, google-chrome.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 1400, timeout: int = 120) -> Path:
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={out.resolve()}",
            page.resolve().as_uri(),
        ],
        check=True,
        timeout=timeout,
        capture_output=True,
    )
    return out


def colour_shares(png: Path) -> dict[str, float]:
    """Shares of pixels that are clearly red (a unit high) and clearly blue (a unit low), and of non-white ones."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))[..., :3]  # (height, width, 3) in [0, 1]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return {
        "red": float(((r > 0.8) & (g < 0.75) & (b < 0.75)).mean()),
        "blue": float(((b > 0.8) & (r < 0.75)).mean()),
        "not_white": float((img.min(-1) < 0.9).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    screenshot(args.page, args.out)
    shares = colour_shares(args.out)
    ok = shares["not_white"] > 0.02 and shares["red"] + shares["blue"] > 0.01  # text, and it is coloured
    print(json.dumps({"page": str(args.page), "screenshot": str(args.out), **shares, "coloured_text": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
