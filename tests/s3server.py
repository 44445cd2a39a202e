"""A real S3-compatible server for the tests: moto's standalone server on loopback.

``s3_server`` (session) starts ``python -m moto.server`` on a free port, waits until it
answers, creates a bucket and yields the environment a process needs to use it
(OBJECT_STORAGE_URL and boto3's AWS_* variables); the server is stopped at the end.
``s3_storage`` (per test) points this test process's settings.STORAGES at it, under a
prefix of its own, so in-process services and views use object storage.
Registered in tests/conftest.py.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dotsocr_site.env import object_storage_backend
from tests.live import free_port

BUCKET = "dotsocr-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    env: dict[str, str]  # OBJECT_STORAGE_URL and the AWS_* variables

    def client(self):
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under ``prefix`` (sorted)."""
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        )

    def env_for(self, prefix: str) -> dict[str, str]:
        return {**self.env, "OBJECT_STORAGE_URL": f"s3://{self.bucket}/{prefix}"}


def wait_until_answers(process: subprocess.Popen, endpoint: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto.server exited with {process.returncode}")
        try:
            httpx.get(endpoint, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"moto.server did not answer at {endpoint} within {timeout} s")


@contextmanager
def running_s3_server(log_path: Path, *, prefix: str = "dotsocr") -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, with the bucket created; yields the
    S3Server (its ``env`` points OBJECT_STORAGE_URL at ``s3://<bucket>/<prefix>``) and
    stops the server on exit. Its output goes to ``log_path``. Used by the tests'
    ``s3_server`` fixture and by bench/several_hosts.py."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "1"},
        )
    try:
        wait_until_answers(process, endpoint)
        server = S3Server(
            endpoint=endpoint,
            bucket=BUCKET,
            env={
                "OBJECT_STORAGE_URL": f"s3://{BUCKET}/{prefix}",
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        )
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    with running_s3_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3_storage(s3_server, settings, monkeypatch):
    """This test's settings use the S3 server under a fresh prefix; yields that prefix
    (its keys are ``<prefix>/uploads/...``, ``<prefix>/outputs/...``)."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OBJECT_STORAGE_URL", f"s3://{s3_server.bucket}/{prefix}")
    backend = object_storage_backend("OBJECT_STORAGE_URL", presigned_seconds=settings.OBJECT_STORAGE_PRESIGNED_SECONDS)
    settings.STORAGES = {**settings.STORAGES, "default": backend}
    yield prefix
