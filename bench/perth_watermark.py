"""Resemble AI's Perth watermarking network (MIT; weights inside the ``resemble-perth`` wheel), run directly.

Perth's own wrapper cannot be imported here: ``perth.perth_net`` imports ``pkg_resources`` (gone from
setuptools ≥ 81) to find its weights, its audio processor imports torchaudio (which would pin torch) for a
plain STFT, and its watermarker imports librosa to resample. The network itself needs none of them, so
this module registers perth's two parent packages as empty namespaces (their ``__init__`` files are the
only importers of those three) and uses perth's encoder, decoder and magnitude scaling as shipped; the
STFT is ``torch.stft`` with the parameters torchaudio would pass, resampling is soxr.

What the network does (hparams from the wheel): at 32 kHz, STFT 2048/hop 320, the encoder adds a learned
residual to the normalised log-magnitude below 2 kHz on every frame that is not near-silent, keeping the
phase; the decoder turns any excerpt into one confidence in [0, 1] that the mark is present. It carries
no payload. Only ``resemble-perth==1.0.1`` is known to work: the module paths are its.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import soxr
import torch

VERSION = "1.0.1"
RUN = "perth_net/pretrained/implicit"


class PerthUnavailable(RuntimeError):
    """resemble-perth is not installed (or is a version whose layout this module does not know)."""


@dataclass(frozen=True)
class Network:
    hp: object  # perth's PerthConfig
    encoder: torch.nn.Module
    decoder: torch.nn.Module
    window: torch.Tensor
    utils: types.ModuleType  # perth's log-magnitude scaling: cx_to_magphase, magphase_to_cx
    magmask: Callable  # which frames are loud enough to carry the mark

    def magnitude_phase(self, signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spectrum = torch.stft(signal, self.hp.n_fft, self.hp.hop_size, self.hp.window_size, self.window,
                              center=True, pad_mode="reflect", return_complex=True)
        return self.utils.cx_to_magphase(self.hp, spectrum)

    def signal(self, magnitude: torch.Tensor, phase: torch.Tensor, length: int) -> torch.Tensor:
        spectrum = self.utils.magphase_to_cx(self.hp, magnitude, phase)
        return torch.istft(spectrum, self.hp.n_fft, self.hp.hop_size, self.hp.window_size, self.window,
                           center=True, length=length)


@functools.cache
def network() -> Network:
    """Perth's encoder and decoder with the wheel's weights, loaded once per process (0.2 s, 33 MB)."""
    spec = find_spec("perth")  # locating the package does not run its __init__
    if spec is None or spec.origin is None:
        raise PerthUnavailable(f"the watermark needs resemble-perth: pip install --no-deps resemble-perth=={VERSION}")
    root = Path(spec.origin).parent
    for name, folder in (("perth", root), ("perth.perth_net", root / "perth_net")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    try:
        import yaml
        from perth.perth_net.perth_net_implicit import utils
        from perth.perth_net.perth_net_implicit.config import PerthConfig
        from perth.perth_net.perth_net_implicit.model import (
            compute_subband_freq,
            magmask,
        )
        from perth.perth_net.perth_net_implicit.model.decoder import Decoder
        from perth.perth_net.perth_net_implicit.model.encoder import Encoder

        hp = PerthConfig(**yaml.safe_load((root / RUN / "hparams.yaml").read_text()))
        weights = torch.load(next((root / RUN).glob("perth_net_*.pth.tar")), map_location="cpu", weights_only=True)
    except (ImportError, OSError, StopIteration) as error:
        raise PerthUnavailable(f"resemble-perth=={VERSION} is needed; this install does not work: {error}") from error
    subband = compute_subband_freq(hp)
    encoder, decoder = Encoder(hp.hidden_size, subband), Decoder(hp.hidden_size, subband)
    for part, module in (("encoder.", encoder), ("decoder.", decoder)):
        module.load_state_dict({k[len(part):]: v for k, v in weights["model"].items() if k.startswith(part)})
        module.eval()
    return Network(hp, encoder, decoder, torch.hann_window(hp.window_size), utils, magmask)


def residual(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The mark Perth adds to ``audio``, at ``sample_rate`` and of the same length (float32).

    The residual is taken at Perth's rate (STFT → iSTFT of the unchanged spectrum is exact), so the
    programme itself is never resampled: only the mark, which lies below 2 kHz, is.
    """
    net = network()
    x = torch.from_numpy(_to_rate(audio, sample_rate, net.hp.sample_rate))
    with torch.inference_mode():
        magnitude, phase = net.magnitude_phase(x)
        marked, _mask = net.encoder(magnitude[None])
        mark = net.signal(marked[0], phase, x.numel()) - x
    out = _to_rate(mark.numpy(), net.hp.sample_rate, sample_rate)
    return np.pad(out, (0, max(0, audio.size - out.size)))[: audio.size]


def confidence(audio: np.ndarray, sample_rate: int) -> float | None:
    """Perth's confidence in [0, 1] that ``audio`` carries the mark; None when nothing in it can (silence)."""
    net = network()
    x = torch.from_numpy(_to_rate(audio, sample_rate, net.hp.sample_rate))
    with torch.inference_mode():
        magnitude, _phase = net.magnitude_phase(x)
        if not net.magmask(magnitude[None]).any():
            return None
        return float(net.decoder(magnitude[None])[0].clamp(0.0, 1.0))


def _to_rate(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    audio = np.ascontiguousarray(audio, np.float32)
    return audio if rate == target else soxr.resample(audio, rate, target).astype(np.float32)
