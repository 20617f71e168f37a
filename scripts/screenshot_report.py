#!/usr/bin/env python
"""Render report.html in headless Chromium, with no network, to a PNG (a person's look at the page).

Usage: python scripts/screenshot_report.py output/report.html output/report.png
Needs Chromium (`apt-get install chromium`); the logic lives in cfblend.report.screenshot.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cfblend.report.screenshot import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
