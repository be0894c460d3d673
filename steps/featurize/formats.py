"""WFDB storage formats (signal(5)): how many bytes a run of samples takes and how to decode them.

Every decoder is vectorised numpy over the raw bytes of one window. The narrow formats (at most
16 bits: 80, 16, 61, 160, 212, 310, 311) decode to unsigned *codes*, which a dense histogram
counts directly (`np.bincount`) without a conversion to signed values; `code_values` maps the
codes to digital values once, at the end. The wide formats (24, 32, FLAC) and format 8 (first
differences, whose values drift without bound) decode to signed digital values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Format:
    """One storage format. `block_samples` samples are packed into `block_bytes` bytes; a
    window must start on a block boundary."""

    code: str
    bits: int
    block_samples: int
    block_bytes: int
    nan: int | None  # the digital value WFDB writes for a missing sample
    codes: bool  # decodes to unsigned codes of `bits` bits (dense-histogram friendly)
    flac: bool = False

    @property
    def bytes_per_sample(self) -> float:
        return self.block_bytes / self.block_samples


FORMATS = {
    f.code: f
    for f in (
        Format("8", 8, 1, 1, None, False),
        Format("16", 16, 1, 2, -(2**15), True),
        Format("24", 24, 1, 3, -(2**23), False),
        Format("32", 32, 1, 4, -(2**31), False),
        Format("61", 16, 1, 2, -(2**15), True),
        Format("80", 8, 1, 1, -(2**7), True),
        Format("160", 16, 1, 2, -(2**15), True),
        Format("212", 12, 2, 3, -(2**11), True),
        Format("310", 10, 3, 4, -(2**9), True),
        Format("311", 10, 3, 4, -(2**9), True),
        Format("508", 8, 1, 0, -(2**7), False, flac=True),
        Format("516", 16, 1, 0, -(2**15), False, flac=True),
        Format("524", 24, 1, 0, -(2**23), False, flac=True),
    )
}


def read_bytes(fmt: Format, n_samples: int) -> int:
    """Bytes holding `n_samples` consecutive samples from a block boundary (what wfdb reads:
    a trailing partial block takes only the bytes its samples touch)."""
    if fmt.block_samples == 1:
        return n_samples * fmt.block_bytes
    if fmt.code == "212":
        return math.ceil(n_samples * 1.5)
    # 310 keeps each sample pair of a partial block in whole 16-bit words; 311 packs 32-bit words.
    full, rest = divmod(n_samples, 3)
    tail = {0: 0, 1: 2, 2: 4 if fmt.code == "310" else 3}[rest]
    return full * 4 + tail


def _blocks(raw: np.ndarray, fmt: Format) -> np.ndarray:
    pad = (-raw.size) % fmt.block_bytes
    if pad:
        raw = np.concatenate([raw, np.zeros(pad, np.uint8)])
    return raw.reshape(-1, fmt.block_bytes).astype(np.uint16)


def _decode_212(raw: np.ndarray) -> np.ndarray:
    # Two 12-bit samples in three bytes; the low nibble of byte 1 holds sample 0's high bits.
    b = _blocks(raw, FORMATS["212"])
    out = np.empty((b.shape[0], 2), np.uint16)
    out[:, 0] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
    out[:, 1] = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
    return out.reshape(-1)


def _decode_310(raw: np.ndarray) -> np.ndarray:
    # Two little-endian 16-bit words; each holds one sample in bits 1-10, and the five high
    # bits of both words together hold the third sample.
    b = _blocks(raw, FORMATS["310"])
    out = np.empty((b.shape[0], 3), np.uint16)
    out[:, 0] = (b[:, 0] >> 1) | ((b[:, 1] & 0x07) << 7)
    out[:, 1] = (b[:, 2] >> 1) | ((b[:, 3] & 0x07) << 7)
    out[:, 2] = ((b[:, 1] >> 3) & 0x1F) | (((b[:, 3] >> 3) & 0x1F) << 5)
    return out.reshape(-1)


def _decode_311(raw: np.ndarray) -> np.ndarray:
    # One little-endian 32-bit word holds three 10-bit samples in bits 0-9, 10-19, 20-29.
    b = _blocks(raw, FORMATS["311"])
    out = np.empty((b.shape[0], 3), np.uint16)
    out[:, 0] = b[:, 0] | ((b[:, 1] & 0x03) << 8)
    out[:, 1] = (b[:, 1] >> 2) | ((b[:, 2] & 0x0F) << 6)
    out[:, 2] = (b[:, 2] >> 4) | ((b[:, 3] & 0x3F) << 4)
    return out.reshape(-1)


def _decode_24(raw: np.ndarray) -> np.ndarray:
    b = raw[: raw.size - raw.size % 3].reshape(-1, 3)
    # The high byte is signed: sign-extend it, then add the two low bytes.
    return (b[:, 2].view(np.int8).astype(np.int32) << 16) | (b[:, 1].astype(np.int32) << 8) | b[:, 0]


def decode(fmt: Format, raw: np.ndarray, n_samples: int) -> np.ndarray:
    """The samples of `raw` (bytes from a block boundary): codes for the narrow formats,
    differences for format 8, digital values for 24 and 32."""
    code = fmt.code
    if code in ("80", "8"):
        out = raw if code == "80" else raw.view(np.int8)
    elif code in ("16", "160"):
        out = raw.view("<u2")
    elif code == "61":
        out = raw.view(">u2")
    elif code == "32":
        out = raw.view("<i4")
    elif code == "24":
        out = _decode_24(raw)
    elif code == "212":
        out = _decode_212(raw)
    elif code == "310":
        out = _decode_310(raw)
    elif code == "311":
        out = _decode_311(raw)
    else:
        raise ValueError(f"format {code} is not stored in a plain data file")
    return out[:n_samples]


def code_values(fmt: Format, codes: np.ndarray) -> np.ndarray:
    """Digital values of unsigned codes (80 and 160 are offset binary, the rest two's complement)."""
    codes = codes.astype(np.int64)
    if fmt.code == "80":
        return codes - 128
    if fmt.code == "160":
        return codes - 32768
    half = 1 << (fmt.bits - 1)
    return np.where(codes >= half, codes - (1 << fmt.bits), codes)
