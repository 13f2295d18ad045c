"""A throwaway S3 API for the test session: moto in server mode, on loopback.

::

    python -m moto.server -H 127.0.0.1 -p <free port>   (a subprocess of the test session)
      └─ wait until GET /moto-api/ answers
      └─ an IAM user with an allow-all policy and an access key (made while auth is off)
      └─ POST /moto-api/reset-auth 0: from now on every request must be signed by a key
         moto knows, so wrong credentials fail as they do on AWS
    ... tests ...
    terminate (kill after a grace period); its temp directory removed

Used by the ``s3`` fixture in ``tests/conftest.py``. Without moto the fixture skips,
unless ``FLOWSCHEMA_CI=1`` where a missing moto is a failure (it is in the dev extras).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tests.pg_server import free_port

REGION = "us-east-1"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@dataclass(frozen=True)
class S3Endpoint:
    """Where the session's S3 API listens and the credentials it accepts."""

    endpoint_url: str
    key: str
    secret: str

    def storage_options(self, **overrides: str) -> dict[str, object]:
        """The ``storage_options=`` an s3fs filesystem needs to reach this server."""
        options: dict[str, object] = {"key": self.key, "secret": self.secret, "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION}}
        options.update(overrides)
        return options

    def env(self) -> dict[str, str]:
        """The environment variables that point boto (and so the CLI) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": REGION}

    def client(self) -> object:
        """A boto3 S3 client of its own: tests check what the server holds without the code under test."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.key, aws_secret_access_key=self.secret, region_name=REGION)


def moto_available() -> bool:
    try:
        import boto3  # noqa: F401
        import flask  # noqa: F401  (moto's server mode)
        import moto  # noqa: F401
    except ImportError:
        return False
    return True


class MotoServer:
    """Start with :meth:`start` (returns an :class:`S3Endpoint`), stop with :meth:`stop`."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="flowschema-s3-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.tmp, "moto.log")

    def start(self, timeout: float = 60) -> S3Endpoint:
        env = {**os.environ, "MOTO_CALL_RESET_API": "true"}
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            env.pop(name, None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                            stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}:\n{self._log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not answer on {self.url} within {timeout:.0f} s:\n{self._log()}") from None
                time.sleep(0.1)
        return self._enforce_auth()

    def _enforce_auth(self) -> S3Endpoint:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.url, aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap", region_name=REGION)
        iam.create_user(UserName="flowschema-tests")
        iam.put_user_policy(UserName="flowschema-tests", PolicyName="all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName="flowschema-tests")["AccessKey"]
        request = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})  # form-encoded, Flask would hide the body
        with urllib.request.urlopen(request, timeout=10):
            pass
        return S3Endpoint(self.url, key["AccessKeyId"], key["SecretAccessKey"])

    def _log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- what a test asks the server, with a client of its own (not the code under test) -------


def put(s3: S3Endpoint, bucket: str, key: str, data: bytes) -> str:
    s3.client().put_object(Bucket=bucket, Key=key, Body=data)  # type: ignore[attr-defined]
    return f"s3://{bucket}/{key}"


def get(s3: S3Endpoint, bucket: str, key: str) -> bytes:
    return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined,no-any-return]


def keys(s3: S3Endpoint, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(o["Key"] for o in listing.get("Contents", []))


def pending_uploads(s3: S3Endpoint, bucket: str) -> list[str]:
    """The keys of multipart uploads begun and neither completed nor aborted."""
    return [u["Key"] for u in s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]  # type: ignore[attr-defined]
