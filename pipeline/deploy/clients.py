"""Every AWS call of the deploy commands goes through `Aws`: lazily made boto3 clients in the
config's region (they honour `AWS_ENDPOINT_URL`, which is how the tests reach moto), errors
turned into one line, and `--dry-run` applied in one place.

Reads (Describe/List/Get/Head) run even under `--dry-run`, so the plan printed is the real one
(create vs update vs unchanged); writes are printed and not made.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.deploy.errors import DeployError, is_not_found, one_line

MAX_SHOWN = 400


def show(value: Any) -> str:
    """An argument as a dry-run line shows it: short values whole, long ones summarised."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes sha256:{hashlib.sha256(value).hexdigest()[:12]}>"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_SHOWN:
        return f"<{len(text)} chars sha256:{hashlib.sha256(text.encode()).hexdigest()[:12]}>"
    return text


class Aws:
    """boto3 clients for one region, plus the read/write discipline of the deploy commands."""

    def __init__(self, region: str, dry_run: bool = False, clients: dict | None = None,
                 echo: Callable[[str], None] = print) -> None:
        self.region = region
        self.dry_run = dry_run
        self.echo = echo
        self._clients = dict(clients or {})
        self._session = None

    def client(self, service: str):
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            if self._session is None:
                self._session = boto3.session.Session(botocore_session=shared_botocore_session(), region_name=self.region)
            self._clients[service] = self._session.client(
                service, config=Config(user_agent_appid="wavepipe-deploy"))
        return self._clients[service]

    def did(self, present: str, past: str) -> str:
        """`created`, or `would create` under --dry-run."""
        return f"would {present}" if self.dry_run else past

    def _api(self, service: str, method: str) -> str:
        return self.client(service).meta.method_to_api_mapping.get(method, method)

    def read(self, service: str, method: str, resource: str, missing_ok: bool = False, **kwargs) -> dict | None:
        """Make a read-only call (also under --dry-run); failures become one DeployError line.

        With `missing_ok`, a missing resource returns None instead of failing."""
        return self._call(service, method, resource, kwargs, missing_ok)

    def write(self, service: str, method: str, resource: str, **kwargs) -> dict | None:
        """Make a changing call, or under --dry-run print it and return None."""
        if self.dry_run:
            # Arguments the resource already names (PipelineName, Bucket, Key...) are not repeated.
            args = ", ".join(f"{k}={show(v)}" for k, v in kwargs.items()
                             if k != "ClientRequestToken" and not (isinstance(v, str) and v in resource))
            self.echo(f"[dry-run] {service}:{self._api(service, method)} {resource}" + (f" ({args})" if args else ""))
            return None
        return self._call(service, method, resource, kwargs)

    def _call(self, service: str, method: str, resource: str, kwargs: dict, missing_ok: bool = False) -> dict:
        client = self.client(service)
        try:
            return getattr(client, method)(**kwargs)
        except (ClientError, BotoCoreError) as err:
            if missing_ok and isinstance(err, ClientError) and is_not_found(err):
                return None
            raise DeployError(one_line(self._api(service, method), resource, err)) from err

    def paginate(self, service: str, method: str, key: str, resource: str, **kwargs) -> list:
        """Every item under `key` across the pages of a read-only listing."""
        client = self.client(service)
        items: list = []
        try:
            for page in client.get_paginator(method).paginate(**kwargs):
                items.extend(page.get(key, []))
        except (ClientError, BotoCoreError) as err:
            raise DeployError(one_line(self._api(service, method), resource, err)) from err
        return items


_LOADER = None


def shared_botocore_session():
    """A fresh botocore session (credentials, region and endpoint resolved anew) sharing one
    model loader per process (the deploy commands' and the builds'): parsing the SageMaker
    service model takes 0.3 s to seconds, and it never changes. The loader only caches what it
    read from botocore's files; two threads at once may at worst parse a model twice."""
    global _LOADER
    import botocore.session

    session = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    else:
        # Each boto3.Session made over a session appends boto3's data folder to its loader's
        # search paths: over a shared loader that list would grow by one per session.
        paths = _LOADER.search_paths
        paths[:] = list(dict.fromkeys(paths))
        session.register_component("data_loader", _LOADER)
    return session


def connect(region: str, dry_run: bool = False) -> Aws:
    """The deploy commands' one way to reach AWS (tests replace it to inject stubbed clients)."""
    return Aws(region, dry_run=dry_run)
