"""Qwen3-TTS throughput vs batch size on the tiny random CustomVoice checkpoint (CPU), and first-audio latency.

    python bench/bench_qwen3.py [--sizes 1,2,4,8] [--lines 8]

Every take runs to its frame cap (random weights never end speech), so each batch size does the same
work: ``lines`` lines of one text, greedy. Figures are ratios measured side by side in one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,2,4,8")
    parser.add_argument("--lines", type=int, default=8)
    args = parser.parse_args()
    import torch
    from qwen3_tiny import build_tiny_checkpoint

    from vibevoice.engines.qwen3.engine import Qwen3Engine
    from vibevoice.engines.qwen3.generation import Request, Sampling

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Qwen3Engine(build_tiny_checkpoint(Path(tmp) / "cv", "custom_voice"), device="cpu")
        rows = [Request("A line of about this length, spoken.", "en", 1.0, "", "Vivian") for _ in range(args.lines)]
        engine.speak(rows[:1], Sampling(temperature=0), 0, 0)  # warm-up
        base = None
        for size in map(int, args.sizes.split(",")):
            t0 = time.perf_counter()
            first = None
            audio = 0
            for start in range(0, len(rows), size):
                takes = engine.speak(rows[start:start + size], Sampling(temperature=0), 0, 0)
                first = first or time.perf_counter() - t0
                audio += sum(t.audio.size for t in takes) / 24_000
            wall = time.perf_counter() - t0
            base = base or audio / wall
            print(f"batch {size:2d}: {audio / wall:6.2f} s audio/s ({audio / wall / base:4.2f}x), "
                  f"first audio after {first:5.2f} s")


if __name__ == "__main__":
    main()
