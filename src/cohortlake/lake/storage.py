"""Where a lake is and how to reach it: roots, object-store options, the pyarrow filesystem.

A lake root is a local folder, a ``file://`` URI or an object-store URI; delta-rs and
pyarrow reach an object store with the same keys (``$COHORTLAKE_STORAGE_OPTIONS``).
"""

from __future__ import annotations

import json
import os
from urllib.parse import unquote, urlparse

from cohortlake.errors import UserError


def normalise_root(root: str) -> str:
    """Local paths become absolute; ``file://`` URIs become local paths; other URIs pass through."""
    root = os.fspath(root)
    if root.startswith("file:"):  # file:///x and Hadoop's file:/x
        return os.path.abspath(unquote(urlparse(root).path)).rstrip("/") or "/"
    if "://" not in root:
        return os.path.abspath(os.path.expanduser(root)).rstrip("/") or "/"
    return root.rstrip("/")


def rust_uri(uri: str) -> str:
    """The same location spelled for deltalake / pyarrow (Hadoop's ``s3a://`` is ``s3://`` there)."""
    return "s3://" + uri[len("s3a://"):] if uri.startswith("s3a://") else uri


STORAGE_OPTIONS_ENV = "COHORTLAKE_STORAGE_OPTIONS"


def storage_options_from_config(environ=None) -> dict[str, str] | None:
    """Storage options for a remote lake from ``$COHORTLAKE_STORAGE_OPTIONS``.

    The value is a JSON object (``{"AWS_REGION": "us-east-1"}``) or ``@FILE`` naming a JSON
    or YAML file holding one; keys are delta-rs / object_store keys (``AWS_ACCESS_KEY_ID``,
    ``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_ACCOUNT_NAME``, ``GOOGLE_SERVICE_ACCOUNT``, …).
    Unset means None: delta-rs and pyarrow then use the environment's own credentials.
    """
    value = (environ if environ is not None else os.environ).get(STORAGE_OPTIONS_ENV, "").strip()
    if not value:
        return None
    where = STORAGE_OPTIONS_ENV
    if value.startswith("@"):
        where = value[1:]
        try:
            with open(where, encoding="utf-8") as source:
                text = source.read()
        except OSError as error:
            raise UserError(f"{STORAGE_OPTIONS_ENV}: cannot read {where}: {error.strerror}") from None
        import yaml

        try:
            options = yaml.safe_load(text)  # YAML is a superset of JSON
        except yaml.YAMLError as error:
            raise UserError(f"{where}: not valid JSON or YAML ({error})") from None
    else:
        try:
            options = json.loads(value)
        except json.JSONDecodeError as error:
            raise UserError(f"{STORAGE_OPTIONS_ENV}: not a JSON object ({error.msg} at character {error.pos}); "
                            "give a JSON object or @FILE") from None
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise UserError(f"{where}: expected an object of option names to values, e.g. {{\"AWS_REGION\": \"us-east-1\"}}")
    bad = [k for k, v in options.items() if not isinstance(v, (str, int, float, bool))]
    if bad:
        raise UserError(f"{where}: option {bad[0]!r} must be a text, number or true/false value")
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in options.items()}


def arrow_filesystem(root: str, options: dict[str, str] | None):
    """(pyarrow filesystem, root as that filesystem spells it) for a lake root.

    With storage options, S3 and Azure filesystems are made from the same keys delta-rs
    reads, so both libraries reach the store the same way; otherwise pyarrow resolves the
    URI with the environment's credentials.
    """
    from pyarrow import fs as pafs

    uri = rust_uri(root)
    parsed = urlparse(uri)
    given = {k.upper(): v for k, v in (options or {}).items()}
    if parsed.scheme == "s3" and given:
        endpoint = given.get("AWS_ENDPOINT_URL") or given.get("AWS_ENDPOINT")
        kwargs = {
            "access_key": given.get("AWS_ACCESS_KEY_ID"),
            "secret_key": given.get("AWS_SECRET_ACCESS_KEY"),
            "session_token": given.get("AWS_SESSION_TOKEN"),
            "region": given.get("AWS_REGION") or given.get("AWS_DEFAULT_REGION"),
        }
        if endpoint:
            endpoint_url = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            kwargs["endpoint_override"] = endpoint_url.netloc
            kwargs["scheme"] = endpoint_url.scheme
        if given.get("AWS_ALLOW_HTTP", "").lower() == "true":
            kwargs["scheme"] = "http"
        filesystem = pafs.S3FileSystem(**{k: v for k, v in kwargs.items() if v is not None})
        return filesystem, f"{parsed.netloc}{parsed.path}".rstrip("/")
    if parsed.scheme in ("abfs", "abfss", "az") and given:
        container, _, host = parsed.netloc.partition("@")
        account = given.get("AZURE_STORAGE_ACCOUNT_NAME") or host.split(".")[0]
        kwargs = {"account_name": account, "account_key": given.get("AZURE_STORAGE_ACCOUNT_KEY")}
        filesystem = pafs.AzureFileSystem(**{k: v for k, v in kwargs.items() if v is not None})
        return filesystem, f"{container}{parsed.path}".rstrip("/")
    return pafs.FileSystem.from_uri(uri)
