"""`upsert` uploads the jobs' wheelhouse once per key, beside the code bundle, marker last
(moto's S3; a real `pip download` of a small requirements file, one package with a binary
wheel for the image's platform)."""

from __future__ import annotations

from pipeline.deploy import clients
from pipeline.deploy import wheel_upload as deploy_wheelhouse
from pipeline.build.wheelhouse import MARKER, REQUIREMENTS, Wheelhouse
from tests.pipeline.deploy.conftest import operations, writes

BASE = "s3://wavepipe-example/wavepipe/wavepipe-example"


def test_built_once_uploaded_marker_last_then_left_alone(cfg, account, api_calls, tmp_path, capsys):
    # Built by this interpreter whatever its version: a 3.11 laptop deploys the 3.12 image's wheels.
    small = tmp_path / "requirements.txt"
    small.write_text("\n".join(line for line in REQUIREMENTS.read_text().splitlines()
                               if line.startswith(("pydantic==", "pydantic-core=="))))
    spec = Wheelhouse.for_python("3.12", small)
    uri = spec.uri(BASE)
    aws = clients.connect(cfg.aws.region)
    api_calls.clear()

    deploy_wheelhouse.ensure(aws, spec, uri, requirements=small, cache=tmp_path / "cache")

    puts = [p["Key"] for _, op, p in api_calls if op == "PutObject"]
    assert puts[-1] == uri[len("s3://wavepipe-example/"):] + MARKER
    assert any("pydantic_core-" in k and "manylinux" in k and "cp312" in k for k in puts)
    assert f"wheelhouse {spec.key} (cp312 manylinux_2_28_x86_64/manylinux2014_x86_64): {len(puts)} files" \
        in capsys.readouterr().out

    api_calls.clear()
    deploy_wheelhouse.ensure(aws, spec, uri, requirements=small, cache=tmp_path / "other-cache")
    assert writes(api_calls) == [] and operations(api_calls) == ["HeadObject"]
    assert not (tmp_path / "other-cache").exists()  # nothing built either
