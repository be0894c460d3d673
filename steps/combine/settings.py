"""Options of the combine stage: the YAML section `stages.combine` and the container's
`--settings` file are this one model."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from steps.featurize.summary import FEATURE_COLUMNS

# Channel names as they occur in MIMIC-II/III and other PhysioNet databases. Matching ignores
# case, spaces and punctuation (see steps.combine.run.alias_key), so `Resp. Imp.` and
# `RESP IMP` are one entry.
DEFAULT_SIGNAL_ALIASES: dict[str, list[str]] = {
    "I": ["I", "ECG I", "ECG lead I", "Lead I"],
    "II": ["II", "ECG II", "ECG lead II", "Lead II"],
    "III": ["III", "ECG III", "ECG lead III", "Lead III"],
    "AVR": ["aVR", "AVR", "ECG aVR"],
    "AVL": ["aVL", "AVL", "ECG aVL"],
    "AVF": ["aVF", "AVF", "ECG aVF"],
    "V": ["V", "ECG V", "Lead V"],
    "MCL1": ["MCL1", "MCL", "ECG MCL1"],
    "ABP": ["ABP", "ART", "Art", "ART1", "Arterial BP"],
    "PAP": ["PAP", "PA", "PAP1"],
    "CVP": ["CVP"],
    "ICP": ["ICP"],
    "PLETH": ["PLETH", "Pleth", "PLETH1", "SpO2 wave"],
    "RESP": ["RESP", "Resp", "Resp.", "Resp. Imp.", "RESP IMP", "Impedance"],
    "CO2": ["CO2", "CO2 wave", "etCO2 wave"],
}
DEFAULT_NUMERICS_ALIASES: dict[str, list[str]] = {
    "HR": ["HR", "Heart Rate"],
    "PULSE": ["PULSE", "Pulse", "PULSE (SpO2)", "Pulse (SpO2)"],
    "SPO2": ["SpO2", "%SpO2", "SPO2", "SaO2"],
    "RESP": ["RESP", "Resp", "Resp Rate", "RR", "Resp. Rate"],
    "ABP_SYS": ["ABPSys", "ABP Sys", "ABP SYS", "ART Sys", "ARTSys"],
    "ABP_DIAS": ["ABPDias", "ABP Dias", "ABP DIAS", "ART Dias", "ARTDias"],
    "ABP_MEAN": ["ABPMean", "ABP Mean", "ABP MEAN", "ART Mean", "ARTMean"],
    "NBP_SYS": ["NBPSys", "NBP Sys", "NBP SYS"],
    "NBP_DIAS": ["NBPDias", "NBP Dias", "NBP DIAS"],
    "NBP_MEAN": ["NBPMean", "NBP Mean", "NBP MEAN"],
    "PAP_SYS": ["PAPSys", "PAP Sys"],
    "PAP_DIAS": ["PAPDias", "PAP Dias"],
    "PAP_MEAN": ["PAPMean", "PAP Mean"],
    "CVP": ["CVP"],
    "TEMP": ["Temp", "TEMP", "Tblood", "T1"],
}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


def alias_key(name: str) -> str:
    """`Resp. Imp.` -> `respimp`: what two spellings of one channel name have in common."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


class GlueTable(BaseModel):
    """Where to register the combined summary in the Glue Data Catalog (through awswrangler)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str = Field(default="wavepipe", pattern=NAME.pattern, description="Glue database (created if absent).")
    table: str = Field(default="waveform_summary", pattern=NAME.pattern, description="Glue table name.")
    location: str = Field(
        default="",
        description="s3:// prefix holding the table's parquet files, rewritten on every run (mode overwrite). "
        "Required when glue is set.",
    )

    @field_validator("location")
    @classmethod
    def _s3(cls, value: str) -> str:
        if not value.startswith("s3://") or len(value) <= len("s3://"):
            raise ValueError(f"glue.location must be an s3:// prefix, got {value!r}")
        return value.rstrip("/") + "/"


class CombineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signal_aliases: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_SIGNAL_ALIASES.items()},
        description="Normalised waveform name -> raw names recorded for it (matched ignoring case, spaces "
        "and punctuation). Names in no list keep their raw spelling.",
    )
    numerics_aliases: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_NUMERICS_ALIASES.items()},
        description="The same for numerics records, kept apart from waveforms: numerics RESP is "
        "breaths/min, waveform RESP an impedance trace.",
    )
    expected_shards: list[str] = Field(
        default_factory=list,
        description="Shard names that should be present (filled by the builder); missing ones are reported.",
    )
    require_all_shards: bool = Field(
        default=False,
        description="Exit 1 (after writing what exists) when an expected shard is missing, failed or invalid "
        "(in a pipeline the builder decides it: see stages.combine.require_all_shards).",
    )
    required_columns: list[str] = Field(
        default_factory=lambda: list(FEATURE_COLUMNS),
        description="Columns every shard's features.parquet must have (the built-in summary's by default; "
        "set for a custom feature function).",
    )
    glue: GlueTable | None = Field(
        default=None,
        description="Register the summary as a Glue table (AWS runs; skipped on local storage).",
    )

    @field_validator("signal_aliases", "numerics_aliases")
    @classmethod
    def _one_meaning_per_name(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for normalised, raws in value.items():
            for raw in [normalised, *raws]:
                key = alias_key(raw)
                if seen.setdefault(key, normalised) != normalised:
                    raise ValueError(f"{raw!r} is an alias of both {seen[key]!r} and {normalised!r}")
        return value
