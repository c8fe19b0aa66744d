"""Blob stores: where the collector keeps its lake (a folder, or an S3-compatible bucket).

A store maps keys (relative, ``/``-separated paths such as ``tiles/ab/ab12....webp``) to bytes.
Writes are atomic: a reader sees a whole object or none. ``store.url`` is the lake URI that
``demotrace build`` reads with :class:`demotrace.lake.LakeSource`.

``open_blobs`` takes a folder path, ``file:///path`` or ``s3://bucket/prefix``. For S3 the
endpoint comes from ``DEMOTRACE_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL`` (e.g.
``http://127.0.0.1:9000``; unset: AWS itself), the region from ``AWS_DEFAULT_REGION`` (default
``us-east-1``) and the credentials the usual boto3 way (environment, profile, instance role).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from demotrace.errors import CollectorError

#: Keys per S3 listing request (the S3 maximum); tests lower it to exercise the paginator.
PAGE_SIZE = 1000
#: Attempts per S3 request (boto3 "standard" retry mode) and connect/read timeout in seconds.
ATTEMPTS = 3
TIMEOUT = 10.0

_KEY = re.compile(r"[A-Za-z0-9_.=/-]+")
_TMP = ".tmp"  # temp files are named ".<name>~<random>.tmp": "~" is never in a key


def _check_key(key: str, *, prefix: bool = False) -> str:
    """``key`` if it is a relative key, else ValueError; a ``prefix`` may also be "" or end in /"""
    if prefix and key == "":
        return key
    if not isinstance(key, str):
        raise ValueError(f"Invalid blob key {key!r}: not a string.")
    body = key[:-1] if prefix and key.endswith("/") else key
    if (
        not _KEY.fullmatch(key)
        or key.startswith("/")
        or any(part in ("", ".", "..") for part in body.split("/"))
    ):
        raise ValueError(
            f"Invalid blob key {key!r}: a key is a relative path of letters, digits and _ . = - "
            "joined by /, without empty, . or .. parts."
        )
    return key


def _is_key(key: str) -> bool:
    try:
        _check_key(key)
    except ValueError:
        return False
    return True


@runtime_checkable
class BlobStore(Protocol):
    """Bytes by key: the collector's lake."""

    url: str  # the lake URI `demotrace build` reads (lake.LakeSource)

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically (replacing what was there)."""

    def get(self, key: str) -> bytes:
        """The bytes at ``key``; KeyError if absent."""

    def exists(self, key: str) -> bool:
        """True if an object is stored at ``key``."""

    def size(self, key: str) -> int | None:
        """Size in bytes of the object at ``key``, None if absent."""

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens if it is absent."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys that start with ``prefix``, sorted."""

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` at ``key`` (streamed: for objects too big for memory)."""

    def get_file(self, key: str, dest: Path) -> None:
        """Write the object at ``key`` to ``dest`` (streamed); KeyError if absent."""

    def local_path(self, key: str) -> Path | None:
        """Where the object at ``key`` is a file on this machine (a folder store), else None."""


# -- a folder ---------------------------------------------------------------------------------
def _fs_advice(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "The disk is full (or over quota): free space or move the lake to a bigger disk."
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        return (
            "The collector may not write there: give the user that runs it write access to the "
            "folder, or choose another folder."
        )
    return "Check the folder and the disk it is on."


class FsBlobs:
    """Blobs as files under a folder (created if missing)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error("create", self.root, exc) from None
        if not self.root.is_dir():
            raise CollectorError(f"The blob store {self.url} is not a folder. Give a folder path.")

    def __repr__(self) -> str:
        return f"FsBlobs({self.url!r})"

    def _error(self, verb: str, path: Path, exc: OSError) -> CollectorError:
        why = exc.strerror or str(exc)
        return CollectorError(
            f"The blob store at {self.url} cannot {verb} {path}: {why}. {_fs_advice(exc)}"
        )

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    def put(self, key: str, data: bytes) -> None:
        """Write a temp file beside the target, fsync it, and rename it over the target."""
        path = self._path(key)
        tmp = path.with_name(f".{path.name}~{secrets.token_hex(6)}{_TMP}")
        try:
            for attempt in range(3):  # a concurrent delete may remove the new folder: retry
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._error("write", path, exc) from None
        self._sync_dir(path.parent)

    @staticmethod
    def _sync_dir(folder: Path) -> None:
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot sync a folder; the rename is still atomic
        finally:
            os.close(fd)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def put_file(self, key: str, path: Path) -> None:
        """Copy ``path`` beside the target, fsync it, and rename it over the target."""
        target = self._path(key)
        tmp = target.with_name(f".{target.name}~{secrets.token_hex(6)}{_TMP}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as src, open(tmp, "xb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._error("write", target, exc) from None
        self._sync_dir(target.parent)

    def get_file(self, key: str, dest: Path) -> None:
        source = self._path(key)
        try:
            shutil.copyfile(source, dest)
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise self._error("read", source, exc) from None

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None
        except OSError as exc:
            raise self._error("read", path, exc) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error("read", path, exc) from None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def delete(self, key: str) -> None:
        """Remove the file, then its folders below the root that are left empty."""
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise self._error("delete", path, exc) from None
        folder = path.parent
        while folder != self.root:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (or already gone): stop there
            folder = folder.parent

    def list(self, prefix: str = "") -> Iterator[str]:
        _check_key(prefix, prefix=True)
        folder, _sep, _rest = prefix.rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        keys = []
        for dirpath, _dirs, files in os.walk(start):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            base = "" if rel == "." else rel + "/"
            for name in files:
                key = base + name
                if key.startswith(prefix) and _is_key(key):  # skips temp files: "~"
                    keys.append(key)
        yield from sorted(keys)


# -- S3 ---------------------------------------------------------------------------------------
_MISSING = {"404", "NoSuchBucket", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class S3Blobs:
    """Blobs as objects of an S3 bucket, under a prefix, through boto3.

    ``endpoint`` is an S3-compatible server's URL (None: AWS). Requests use boto3's "standard"
    retry mode with ``attempts`` tries and ``timeout`` seconds to connect and to read (defaults:
    :data:`ATTEMPTS`, :data:`TIMEOUT`). :meth:`check` asks once that the bucket answers.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str = "us-east-1",
        attempts: int | None = None,
        timeout: float | None = None,
    ) -> None:
        try:
            import boto3
            from botocore import exceptions
            from botocore.config import Config
        except ImportError:
            raise CollectorError(
                "An s3:// blob store needs boto3, which is not installed. Install the server "
                "extra: pip install 'demotrace[server]'."
            ) from None
        prefix = prefix.strip("/")
        if prefix:
            _check_key(prefix)
        self.bucket, self.prefix = bucket, prefix
        self.endpoint, self.region = endpoint or None, region
        self._root = f"{prefix}/" if prefix else ""
        self._exc = exceptions
        self._config = Config(
            retries={"mode": "standard", "max_attempts": attempts or ATTEMPTS},
            connect_timeout=timeout or TIMEOUT,
            read_timeout=timeout or TIMEOUT,
            max_pool_connections=32,
            s3={"addressing_style": "path"} if self.endpoint else {},
        )
        self._boto3 = boto3
        self.client = self._client()
        self.url = self._url()

    def __repr__(self) -> str:
        return f"S3Blobs({self.where!r})"

    @property
    def where(self) -> str:
        """The store in words for messages: its s3:// address and endpoint."""
        at = f" at {self.endpoint}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{at}"

    def _client(self) -> Any:
        return self._boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region, config=self._config
        )

    def _url(self) -> str:
        query = {"region": self.region}
        if self.endpoint:
            parts = urlsplit(self.endpoint)
            query = {
                "endpoint_override": parts.netloc.rpartition("@")[2],  # never credentials
                "scheme": parts.scheme or "https",
                **query,
            }
        text = "&".join(f"{k}={quote(v, safe=':[]')}" for k, v in query.items())
        path = f"/{self.prefix}" if self.prefix else ""
        return f"s3://{self.bucket}{path}?{text}"

    def check(self) -> None:
        """Fail with a clear CollectorError unless the bucket exists and is reachable."""
        response = self._call("head_bucket", Bucket=self.bucket)
        region = response.get("BucketRegion")
        if region and region != self.region and not self.endpoint:
            self.region = region  # AWS: talk to the bucket's own region from now on
            self.client = self._client()
            self.url = self._url()

    def _error(self, exc: Exception) -> CollectorError:
        e = self._exc
        if isinstance(exc, e.NoCredentialsError | e.PartialCredentialsError):
            return CollectorError(
                f"No S3 credentials for the blob store {self.where}. Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role) for the collector."
            )
        if isinstance(exc, e.ConnectionError | e.HTTPClientError):
            return CollectorError(
                f"The S3 endpoint of the blob store {self.where} does not answer ({exc}). Check "
                "that the S3 server is running and reachable, and that DEMOTRACE_S3_ENDPOINT (or "
                "AWS_ENDPOINT_URL) names it."
            )
        if isinstance(exc, e.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if (code in _MISSING and exc.operation_name == "HeadBucket") or code == "NoSuchBucket":
                return CollectorError(
                    f"The S3 bucket {self.bucket!r} of the blob store {self.where} does not exist. "
                    f"Create it (e.g. `aws s3 mb s3://{self.bucket}`), or fix the blob store URL."
                )
            if code in _DENIED:
                return CollectorError(
                    f"S3 denies access to the blob store {self.where} ({code}). Check the "
                    "collector's credentials and that they may read, write, list and delete "
                    "objects in that bucket."
                )
            return CollectorError(
                f"S3 refused a request to the blob store {self.where}: "
                f"{code} {error.get('Message', '')}".rstrip()
                + ". Check the bucket and the S3 server's logs."
            )
        return CollectorError(f"The S3 blob store {self.where} failed: {exc}.")

    def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, op)(**kwargs)
        except (self._exc.BotoCoreError, self._exc.ClientError) as exc:
            raise self._error(exc) from None

    @staticmethod
    def _code(exc: Any) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    def put(self, key: str, data: bytes) -> None:
        """One PutObject: S3 never shows a partly written object."""
        self._call("put_object", Bucket=self.bucket, Key=self._root + _check_key(key), Body=data)

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        """A read of ``key``: KeyError when it is absent, CollectorError for the rest."""
        try:
            yield
        except self._exc.ClientError as exc:
            if self._code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise KeyError(key) from None
            raise self._error(exc) from None
        except self._exc.BotoCoreError as exc:
            raise self._error(exc) from None

    def get(self, key: str) -> bytes:
        name = self._root + _check_key(key)
        with self._reading(key):
            return self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()

    def local_path(self, key: str) -> Path | None:
        return None

    def put_file(self, key: str, path: Path) -> None:
        """boto3's managed upload (multipart for big files; S3 shows the object only once
        complete)."""
        from boto3.exceptions import S3UploadFailedError

        name = self._root + _check_key(key)
        try:
            self.client.upload_file(str(path), self.bucket, name)
        except (self._exc.BotoCoreError, self._exc.ClientError) as exc:
            raise self._error(exc) from None
        except S3UploadFailedError as exc:
            raise CollectorError(
                f"The blob store {self.where} did not take the upload of {key} ({exc}). Check "
                "the S3 server, its free space and the bucket's permissions."
            ) from None

    def get_file(self, key: str, dest: Path) -> None:
        name = self._root + _check_key(key)
        with self._reading(key):
            self.client.download_file(self.bucket, name, str(dest))

    def size(self, key: str) -> int | None:
        name = self._root + _check_key(key)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
        except self._exc.ClientError as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(exc) from None
        except self._exc.BotoCoreError as exc:
            raise self._error(exc) from None

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def delete(self, key: str) -> None:
        self._call("delete_object", Bucket=self.bucket, Key=self._root + _check_key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` page by page (S3 returns them sorted); folder markers skipped."""
        _check_key(prefix, prefix=True)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self._root + prefix,
            PaginationConfig={"PageSize": PAGE_SIZE},
        )
        cut = len(self._root)
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"][cut:]
                    if _is_key(key):
                        yield key
        except (self._exc.BotoCoreError, self._exc.ClientError) as exc:
            raise self._error(exc) from None


# -- opening ----------------------------------------------------------------------------------
def _s3_options(spec: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(spec)
    bucket, prefix = parts.netloc, unquote(parts.path)
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise CollectorError(
            f"The blob store URL {spec} names no valid bucket. Write s3://bucket/prefix, with a "
            "bucket name of 3 to 63 lower-case letters, digits, dots and hyphens."
        )
    if prefix.strip("/") and not _is_key(prefix.strip("/")):
        raise CollectorError(
            f"The blob store URL {spec} has an invalid prefix {prefix!r}: use letters, digits and "
            "_ . = - joined by /."
        )
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {"endpoint_override", "scheme", "region"}
    if unknown:
        raise CollectorError(
            f"The blob store URL {spec} has unknown options ({', '.join(sorted(unknown))}). Only "
            "endpoint_override, scheme and region are understood; give credentials in the "
            "environment, never in the URL."
        )
    return bucket, prefix, query


def open_blobs(spec: str | os.PathLike[str]) -> BlobStore:
    """The blob store at a folder path, ``file:///path`` or ``s3://bucket/prefix``.

    An S3 store is checked once (the bucket exists and answers), so that a bad configuration
    fails at start with a clear :class:`CollectorError`. ``s3://`` URLs may carry the
    ``endpoint_override``, ``scheme`` and ``region`` options of a store's ``url``.
    """
    text = os.fspath(spec)
    if "://" not in text:
        return FsBlobs(text)
    scheme = text.split("://", 1)[0].lower()
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise CollectorError(f"The blob store URL {text} names another host: use file:///path.")
        return FsBlobs(unquote(parts.path))
    if scheme != "s3":
        raise CollectorError(
            f"The blob store URL {text} is neither a folder, file:///path nor s3://bucket/prefix."
        )
    bucket, prefix, query = _s3_options(text)
    endpoint = os.environ.get("DEMOTRACE_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if "endpoint_override" in query:
        host = query["endpoint_override"]
        endpoint = host if "://" in host else f"{query.get('scheme', 'https')}://{host}"
    region = query.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    store = S3Blobs(bucket, prefix, endpoint=endpoint, region=region)
    store.check()
    return store
