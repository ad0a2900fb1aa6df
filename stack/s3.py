"""S3 for the batch view: moto's server mode (in memory: objects live as long as the process)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from config.connections import s3_keys
from config.settings import Settings
from stack import render
from stack.errors import PrerequisiteMissing
from stack.plan import HOST, Layout, local_s3_credentials
from stack.processes import port_answers
from stack.service import Service


def s3_client(settings: Settings, endpoint_url: str | None = None) -> Any:
    """boto3's client with the settings' keys, or the AWS default credential chain without."""
    access_key, secret_key = s3_keys(settings)
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )


class S3Service(Service):
    name = "s3"
    stop_grace_s = 10.0

    def __init__(self, settings: Settings) -> None:
        # The stand-in's own keys, whatever the settings say (unset: the AWS chain, for AWS).
        self.settings = settings.model_copy(update=local_s3_credentials())
        self.port = settings.stack_s3_port
        self.address = f"{HOST}:{self.port}"
        self.ports = (self.port,)
        self.endpoint_url = f"http://{self.address}"

    def check_prerequisites(self) -> None:
        if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
            raise PrerequisiteMissing(
                "moto's server (the local S3) is not installed: run pip install 'runway[stack]' "
                "(from a checkout: pip install -e '.[stack]'; make .venv/.installed does)."
            )

    async def prepare(self, layout: Layout) -> list[str]:
        return render.s3_command(sys.executable, self.port)

    async def ready(self) -> bool:
        if not port_answers(self.port):
            return False
        return await asyncio.to_thread(self._list_buckets)

    def _list_buckets(self) -> bool:
        try:
            s3_client(self.settings, self.endpoint_url).list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    async def after_ready(self) -> None:
        await asyncio.to_thread(self._create_bucket)

    def _create_bucket(self) -> None:
        client = s3_client(self.settings, self.endpoint_url)
        names = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        if self.settings.s3_bucket not in names:
            client.create_bucket(Bucket=self.settings.s3_bucket)
