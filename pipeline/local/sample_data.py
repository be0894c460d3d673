"""A small, realistic sample dataset written with `wfdb` itself: what `deploy.py local` runs on.

Layout (MIMIC-III Waveform Database conventions):

    <out>/mimic3wdb/RECORDS                       "30/3000003/" ...
    <out>/mimic3wdb/<group 30..>/RECORDS          "3000003/" ...
    <out>/mimic3wdb/<group>/<record>/RECORDS      "3000003", "3000003n"
        <record>.hea          master header of a variable-layout multi-segment record
        <record>_layout.hea   layout header: every signal of the record, no samples
        <record>_NNNN.hea/.dat  segments, format 80 at 125 Hz, with NaN runs and gaps (~)
        <record>n.hea/.dat    numerics record, format 16 at 1 Hz
    <out>/labels.sqlite       waveform_labels(artifact_id, label, patient_id, group_id),
                              document_labels(artifact_id, label)
    <out>/documents/<doc_id>/raw_text.json   {"text": ...}
    <out>/tokenizer/tokenizer.json           a word-level tokenizer trained here on the
                                             documents (nothing is downloaded)

Defects on purpose, so stages exercise their error paths: one record misses a segment's
.dat, one document duplicates another's content, one label names a record with no files.
Deterministic: the same seed gives byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb

FS = 125
WAVE_SIGNALS = {  # name: (units, adc gain, baseline), as in MIMIC-III format-80 headers
    "II": ("mV", 127.0, 0), "V": ("mV", 127.0, 0), "PLETH": ("NU", 255.0, -128),
    "ABP": ("mmHg", 1.28, -109), "RESP": ("pm", 100.0, 0),
}
NUMERICS = {"HR": ("bpm", 10.0, 80.0), "SpO2": ("%", 10.0, 97.0), "RESP": ("pm", 10.0, 16.0),
            "ABPSys": ("mmHg", 10.0, 120.0)}
WAVE_LABELS = ("normal", "afib", "tachycardia", "bradycardia")
DOC_LABELS = {
    "cardiology": "Patient with chest pain and palpitations; ECG shows {x}. Troponin {y}.",
    "respiratory": "Shortness of breath, SpO2 {y}% on room air; chest x-ray shows {x}.",
    "neurology": "Acute confusion and headache; CT head shows {x}. GCS {y}.",
}
SIZES = {"small": (24, 2, 30), "medium": (120, 4, 120)}  # records, groups, documents


@dataclass
class SampleSummary:
    out: Path
    records: list[str] = field(default_factory=list)  # "<group>/<record>"
    documents: list[str] = field(default_factory=list)
    defects: dict[str, str] = field(default_factory=dict)
    bytes: int = 0


def write_sample_data(out: Path, size: str = "small", seed: int = 0) -> SampleSummary:
    """Write the sample dataset under `out` (created; existing files are overwritten)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    n_records, n_groups, n_docs = SIZES[size]
    rng = np.random.default_rng(seed)
    out = Path(out)
    summary = SampleSummary(out)
    root = out / "mimic3wdb"
    groups: dict[str, list[str]] = {}
    for i in range(n_records):
        group = str(30 + i % n_groups)
        record = f"{group}{i // n_groups + 1:05d}"
        _write_record(root / group / record, record, rng)
        groups.setdefault(group, []).append(record)
        summary.records.append(f"{group}/{record}")
    summary.records.sort()
    _write_records_files(root, groups)
    broken = summary.records[len(summary.records) // 2]
    missing = sorted((root / broken).glob("*_0001.dat"))[0]
    missing.unlink()
    summary.defects["missing_segment_data"] = f"{broken}/{missing.name}"
    summary.documents, duplicate, doc_labels = _write_documents(out / "documents", n_docs, rng)
    summary.defects["duplicate_document"] = duplicate
    _write_tokenizer(out / "tokenizer" / "tokenizer.json", out / "documents")
    orphan = f"{n_groups + 30}99999"
    _write_labels(out / "labels.sqlite", summary, doc_labels, orphan, rng)
    summary.defects["label_without_files"] = orphan
    summary.bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return summary


def _stay_seconds(rng: np.random.Generator) -> int:
    # ICU stays are right-skewed: most short, a few long (lognormal, capped).
    return int(np.clip(rng.lognormal(mean=4.2, sigma=0.8), 20, 900))


def _write_record(folder: Path, record: str, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(rng.choice(list(WAVE_SIGNALS), size=int(rng.integers(2, 5)), replace=False),
                   key=list(WAVE_SIGNALS).index)
    start = dt.time(int(rng.integers(0, 24)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
    total = _stay_seconds(rng) * FS
    n_segments = int(rng.integers(1, 5))
    cuts = np.sort(rng.choice(np.arange(FS, total - FS), n_segments - 1, replace=False)) \
        if n_segments > 1 and total > 4 * FS else np.array([], dtype=int)
    bounds = [0, *cuts.tolist(), total]
    seg_names, seg_lens = [f"{record}_layout"], [0]
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:]), start=1):
        if k > 1:  # a gap between segments, as when a monitor was disconnected
            gap = int(rng.integers(1, 20)) * FS
            seg_names.append("~")
            seg_lens.append(gap)
        subset = [n for n in names if rng.random() < 0.8] or names[:1]  # variable layout
        seg = f"{record}_{k:04d}"
        _write_segment(folder, seg, subset, hi - lo, rng, start)
        seg_names.append(seg)
        seg_lens.append(hi - lo)
    _write_layout(folder, record, names, start)
    master = wfdb.MultiRecord(record_name=record, n_sig=len(names), fs=FS, sig_len=sum(seg_lens),
                              layout="variable", seg_name=seg_names, seg_len=seg_lens,
                              base_time=start)
    master.n_seg = len(seg_names)  # wfdb 4.3 MultiRecord.wrheader expects it set
    master.wrheader(write_dir=str(folder))
    _write_numerics(folder, f"{record}n", sum(seg_lens) // FS, rng, start)


def _write_segment(folder: Path, name: str, signals: list[str], length: int,
                   rng: np.random.Generator, start: dt.time) -> None:
    t = np.arange(length) / FS
    rate = rng.uniform(0.8, 2.0)  # beats per second
    columns = []
    for sig in signals:
        _, gain, baseline = WAVE_SIGNALS[sig]
        lo, hi = (-127 - baseline) / gain, (127 - baseline) / gain  # what format 80 can hold
        wave = np.sin(2 * np.pi * rate * t + rng.uniform(0, 6)) ** 15
        wave = lo + (hi - lo) * (0.2 + 0.6 * (wave + 1) / 2 + rng.normal(0, 0.02, length))
        for _ in range(int(rng.integers(0, 4))):  # NaN runs: leads off, probe moved
            at, run = int(rng.integers(0, length)), int(rng.integers(FS // 5, 3 * FS))
            wave[at:at + run] = np.nan
        columns.append(np.clip(wave, lo, hi))
    units = [WAVE_SIGNALS[s][0] for s in signals]
    wfdb.wrsamp(name, fs=FS, units=units, sig_name=list(signals), p_signal=np.column_stack(columns),
                fmt=["80"] * len(signals), adc_gain=[WAVE_SIGNALS[s][1] for s in signals],
                baseline=[WAVE_SIGNALS[s][2] for s in signals], base_time=start,
                write_dir=str(folder))


def _write_layout(folder: Path, record: str, names: list[str], start: dt.time) -> None:
    n = len(names)
    layout = wfdb.Record(
        record_name=f"{record}_layout", n_sig=n, fs=FS, sig_len=0, base_time=start,
        file_name=[f"{record}_layout.dat"] * n, fmt=["80"] * n, sig_name=names,
        units=[WAVE_SIGNALS[s][0] for s in names], adc_gain=[WAVE_SIGNALS[s][1] for s in names],
        baseline=[WAVE_SIGNALS[s][2] for s in names], adc_res=[8] * n, adc_zero=[0] * n,
        init_value=[0] * n, checksum=[0] * n, block_size=[0] * n)
    layout.wrheader(write_dir=str(folder))


def _write_numerics(folder: Path, name: str, seconds: int, rng: np.random.Generator,
                    start: dt.time) -> None:
    seconds = max(seconds, 2)
    columns = []
    for unit, _, mean in NUMERICS.values():
        values = np.round(mean + np.cumsum(rng.normal(0, 0.3, seconds)), 1)
        values[rng.random(seconds) < 0.03] = np.nan  # numerics drop out now and then
        columns.append(values)
    wfdb.wrsamp(name, fs=1, units=[u for u, _, _ in NUMERICS.values()], sig_name=list(NUMERICS),
                p_signal=np.column_stack(columns), fmt=["16"] * len(NUMERICS),
                adc_gain=[g for _, g, _ in NUMERICS.values()], baseline=[0] * len(NUMERICS),
                base_time=start, write_dir=str(folder))


def _write_records_files(root: Path, groups: dict[str, list[str]]) -> None:
    lines = []
    for group, records in sorted(groups.items()):
        (root / group / "RECORDS").write_text("".join(f"{r}/\n" for r in records))
        for record in records:
            (root / group / record / "RECORDS").write_text(f"{record}\n{record}n\n")
            lines.append(f"{group}/{record}/\n")
    (root / "RECORDS").write_text("".join(lines))


def _write_documents(folder: Path, count: int,
                     rng: np.random.Generator) -> tuple[list[str], str, dict[str, str]]:
    findings = ["no acute changes", "atrial fibrillation", "bilateral infiltrates",
                "a small infarct", "sinus tachycardia", "pleural effusion"]
    ids, texts = [], {}
    for i in range(count):
        doc = f"doc-{i + 1:04d}"
        label = list(DOC_LABELS)[int(rng.integers(0, len(DOC_LABELS)))]
        texts[doc] = (label, DOC_LABELS[label].format(
            x=findings[int(rng.integers(0, len(findings)))], y=int(rng.integers(10, 100))))
        ids.append(doc)
    duplicate = f"doc-{count + 1:04d}"
    texts[duplicate] = texts[ids[0]]  # same content under another id: dedup must catch it
    ids.append(duplicate)
    for doc in ids:
        path = folder / doc / "raw_text.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"text": texts[doc][1]}, sort_keys=True))
    return ids, duplicate, {doc: texts[doc][0] for doc in ids}


def _write_tokenizer(path: Path, documents: Path) -> None:
    """A word-level tokenizer trained on the sample documents with `tokenizers`, so the
    documents recipe runs offline. Sorted input and a fixed vocabulary order keep it stable."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], min_frequency=1,
                                       show_progress=False)  # a bar on the terminal, amid the run's lines
    texts = [json.loads(p.read_text())["text"] for p in sorted(documents.glob("*/raw_text.json"))]
    tokenizer.train_from_iterator(texts, trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tokenizer.to_str(pretty=True))


def _write_labels(path: Path, summary: SampleSummary, doc_labels: dict[str, str], orphan: str,
                  rng: np.random.Generator) -> None:
    path.unlink(missing_ok=True)
    weights = np.array([0.55, 0.2, 0.15, 0.1])  # imbalanced, like real labels
    rows = []
    for entry in summary.records:
        group, record = entry.split("/")
        label = WAVE_LABELS[int(rng.choice(len(WAVE_LABELS), p=weights))]
        rows.append((record, label, f"p{int(record) % 100000:06d}", group))
    rows.append((orphan, "normal", "p999999", orphan[:2]))
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE waveform_labels (artifact_id TEXT PRIMARY KEY, label TEXT NOT "
                   "NULL, patient_id TEXT, group_id TEXT)")
        db.executemany("INSERT INTO waveform_labels VALUES (?, ?, ?, ?)", rows)
        db.execute("CREATE TABLE document_labels (artifact_id TEXT PRIMARY KEY, label TEXT NOT NULL)")
        db.executemany("INSERT INTO document_labels VALUES (?, ?)",
                       sorted(doc_labels.items()))
    db.close()
