"""The README's `mosbridge ab` table: one ~8 s espeak-ng sentence through the three AI-side formats.

    python benchmarks/ab_table.py [--wav speech.wav] [--seed N]

Writes the sentence as a 16 kHz 16-bit mono WAV (espeak-ng, band-limited by FFT truncation, as the
codec benchmarks make their speech), prints the machine, the exact command, and runs it (the same
code as `mosbridge ab WAV --seed N`; about 1 minute, real time).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.cli import ab as ab_cmd
from tests.bridge.codecs.speech import speech

SENTENCE = ("The birch canoe slid on the smooth planks and the sheet was glued to the dark blue background "
            "while it is easy to tell the depth of a well.")
RATE = 16000


def write_sentence(path: Path, text: str = SENTENCE, rate: int = RATE) -> float:
    """espeak-ng's rendering of ``text`` at ``rate`` Hz (the tests' speech), peak at half scale, as
    a 16-bit mono WAV; returns its length in s."""
    y = speech(text, rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(y.astype("<i2").tobytes())
    return y.size / rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wav", type=Path, default=Path(tempfile.gettempdir()) / "mosbridge-ab-sentence.wav",
                        help="where to write the sentence")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found: install the Debian package espeak-ng", file=sys.stderr)
        return 2
    seconds = write_sentence(args.wav)
    print(f"python {platform.python_version()} on {platform.machine()}, numpy {np.__version__}; "
          f"{seconds:.1f} s espeak-ng sentence at {RATE} Hz")
    print(f"$ mosbridge ab {args.wav} --seed {args.seed}")
    return ab_cmd.main([str(args.wav), "--seed", str(args.seed)])


if __name__ == "__main__":
    sys.exit(main())
