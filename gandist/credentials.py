"""Object-store credentials: gandist never carries them, every process finds its own.

Ray writes runtime environments to its logs in plain text and shows them (and job metadata)
in its dashboard, so a credential never goes into a runtime environment, a job's metadata,
the config, a checkpoint, TensorBoard or a log line. Each process (driver, Ray worker,
torchrun rank) takes them where the AWS SDKs look: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
(/ AWS_SESSION_TOKEN) in its own environment, a profile (AWS_PROFILE or storage.profile) in
~/.aws/credentials, a web-identity token (Kubernetes service accounts), or the machine's
instance or container metadata. Processes of a Ray cluster that `gandist train` starts itself
inherit the driver's environment; an existing cluster's nodes need their own.

Only settings that are not secret travel to other processes: endpoint, region, profile name.
"""

from __future__ import annotations

import os
import socket
from typing import Optional

from gandist.config import Config, ConfigError

# What may travel in a runtime environment: where the store is and which profile to use.
SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
            "AWS_EC2_METADATA_DISABLED")

# What never travels: the secrets, and the key id that goes with them.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

WHERE_TO_PUT_THEM = (
    "Give every process of the run its own credentials: on this machine, export AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE / storage.profile=<a profile of ~/.aws/credentials>) before "
    "gandist train; on a Ray cluster you started, set them in the environment of `ray start` on every "
    "node, or mount ~/.aws/credentials there; on Kubernetes, the Secret gandist-storage-credentials "
    "(k8s/README.md); on a cloud VM or pod, an instance or service-account role. gandist never "
    "forwards them: Ray would log them in plain text")


class CredentialsError(ConfigError):
    """An s3:// URL of the run, and no credentials where this process can find them."""


def storage_settings(cfg: Config) -> dict[str, str]:
    """The object-store settings other processes may be given (never a secret): this process's
    endpoint, region and profile variables, with storage.endpoint_url / storage.profile as
    AWS_ENDPOINT_URL / AWS_PROFILE (which s3fs, pyarrow and the AWS SDKs read)."""
    env = {k: os.environ[k] for k in SETTINGS if os.environ.get(k)}
    if cfg.storage.endpoint_url:
        env["AWS_ENDPOINT_URL"] = cfg.storage.endpoint_url
    if cfg.storage.profile:
        env["AWS_PROFILE"] = cfg.storage.profile
    return env


def s3_urls(cfg: Config) -> list[str]:
    return [url for url in (cfg.data.url, cfg.run.storage) if url.startswith("s3://")]


def check_credentials(cfg: Config, who: Optional[str] = None) -> None:
    """Fail now, saying where this process looked and how to give it credentials, when the
    run reads or writes s3:// and there are none (instead of an access error mid-run)."""
    urls = s3_urls(cfg)
    if not urls:
        return
    import botocore.session
    from botocore.exceptions import BotoCoreError

    profile = cfg.storage.profile or os.environ.get("AWS_PROFILE")
    where = who or f"the process on {socket.gethostname()}"
    try:
        credentials = botocore.session.Session(profile=profile).get_credentials()
    except BotoCoreError as e:  # a named profile that does not exist, an unreadable file
        raise CredentialsError(f"{', '.join(urls)}: {where} cannot read its object-store credentials: {e}. "
                               + WHERE_TO_PUT_THEM) from None
    if credentials is None:
        looked = ["AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in its environment",
                  f"profile {profile!r} in" if profile else "the default profile in",
                  os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials") + " and ~/.aws/config",
                  "a web-identity token (AWS_WEB_IDENTITY_TOKEN_FILE)", "container and instance metadata"]
        raise CredentialsError(f"{', '.join(urls)}: {where} found no object-store credentials; it looked at "
                               f"{', '.join(looked[:1])}, {looked[1]} {looked[2]}, {looked[3]} and "
                               f"{looked[4]}. " + WHERE_TO_PUT_THEM)
