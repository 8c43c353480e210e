"""Set up the Twilio sample's stack for ``bench_peers.py``: a venv of its own with FastAPI,
uvicorn and websockets, as twilio-samples/speech-assistant-openai-realtime-api-python installs.

Run: ``.venv/bin/python benchmarks/twilio_sample.py`` (creates ``benchmarks/.venv-sample``; run
again to reinstall). The app it runs is ``benchmarks/twilio_sample_app.py``, a re-implementation
of the sample's hot path (see there); the sample's requirements.txt pins plain ``uvicorn`` (no
``[standard]``: no uvloop, no httptools), so neither is installed here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-sample"
# The sample's GA main.py calls websockets.connect(additional_headers=...) and reads
# ``openai_ws.state``: the websockets >= 14 asyncio client.
REQUIREMENTS = ("fastapi", "uvicorn", "websockets>=14")
APP = HERE / "twilio_sample_app.py"


def python() -> Path:
    return VENV / "bin" / "python"


def setup(venv: Path = VENV) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)


def versions(venv: Path = VENV) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], check=True,
                         capture_output=True, text=True).stdout
    wanted = {"fastapi", "starlette", "uvicorn", "websockets", "h11"}
    return " ".join(line for line in out.split() if line.split("==")[0].lower() in wanted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    setup()
    print(f"{VENV}: {versions()}")


if __name__ == "__main__":
    main()
