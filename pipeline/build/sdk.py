"""Importing and using the SageMaker SDK for building: offline, any region, reproducible.

- `sagemaker.mlops` creates a boto3 client at import time and fails without a region.
- The SDK merges the user's own defaults file (`~/.config/sagemaker/config.yaml`: tags, KMS keys,
  subnets...) into every request. The definition must be a pure function of our YAML and code,
  so the build session gets an explicit empty SDK config. That also avoids a jsonschema
  validation of that config on every lookup (0.3 s each, ~20 per step).
- Telemetry: the build calls none of the SDK's instrumented functions (ScriptProcessor.run,
  FrameworkProcessor.run, Pipeline.create/upsert/start); deploys go through boto3.
  tests/pipeline/build/test_compose.py builds with sockets disabled to keep it that way.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager


def prepare(region: str) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    # Role validation (IAM SimulatePrincipalPolicy) would need IAM access even for a dry run;
    # deploy.py checks the role's trust itself and says what is missing.
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")


@contextmanager
def _env(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def import_sdk(region: str) -> None:
    """Import the SDK's pipeline modules once, offline.

    `sagemaker.ai_registry.air_hub` creates a boto3 client while being imported, which looks
    for credentials and, finding none, probes the EC2 metadata service. The probe is switched
    off for the import only, so deploys on EC2 still get the instance's credentials."""
    prepare(region)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with _env(AWS_EC2_METADATA_DISABLED="true"):
        import sagemaker.mlops.workflow.pipeline  # noqa: F401
    # An SDK module calls logging.basicConfig(level=INFO) on import, which would print every
    # botocore INFO line of the deploy commands; the root logger is put back as it was.
    root.handlers[:] = handlers
    root.setLevel(level)
    # The SDK logs at INFO/WARNING what is expected here (no job started under a
    # PipelineSession, job names popped from the definition, no SDK defaults file).
    for name in ("sagemaker", "sagemaker.config"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")


def pipeline_session(region: str, bucket: str):
    """A PipelineSession that makes no AWS call and reads no user SDK defaults."""
    import_sdk(region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    from pipeline.deploy.clients import shared_botocore_session

    # Inert credentials: building never calls AWS, and without them creating the SDK's clients
    # probes the EC2 metadata service for credentials (a network call and a stall off EC2).
    # Should the SDK ever try a call here, it fails instead of acting with the user's identity.
    boto = boto3.Session(botocore_session=shared_botocore_session(), region_name=region,
                         aws_access_key_id="wavepipe-build-offline", aws_secret_access_key="wavepipe-build-offline")
    session = PipelineSession(boto_session=boto, default_bucket=bucket)
    session.sagemaker_config = {}
    return session


class _LocalClientName:
    """Stands in for LocalSagemakerClient where ProcessingStep only reads a method name."""

    def create_processing_job(self, *args, **kwargs):  # pragma: no cover - never called
        raise NotImplementedError


@contextmanager
def cheap_processing_steps():
    """ProcessingStep.__init__ instantiates `LocalSagemakerClient()` only to read
    `create_processing_job.__name__` (SDK 3.27, steps.py). That builds a LocalSession per step:
    a new boto session, the 2 MB SageMaker service model parsed again and a credentials probe,
    about 0.7 s and network traffic per step. For the duration of a build, the name comes from
    a stand-in; the validation it feeds is unchanged."""
    import sagemaker.mlops.workflow.steps as sdk_steps

    original = sdk_steps.LocalSagemakerClient
    sdk_steps.LocalSagemakerClient = _LocalClientName
    try:
        yield
    finally:
        sdk_steps.LocalSagemakerClient = original
