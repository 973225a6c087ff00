"""Credentials stay where they are: only settings travel, a process without credentials for
an s3:// URL stops at start saying where it looked, and no URL in a config carries a password."""

from __future__ import annotations

import pytest

from gandist.cli import main
from gandist.config import ConfigError, compose_config
from gandist.credentials import CredentialsError, check_credentials, storage_settings
from helpers import environ, local_cfg

NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance-metadata address from a test
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "",
}


@pytest.fixture
def no_credentials():
    import os

    with environ(NO_CREDENTIALS):
        for key, value in NO_CREDENTIALS.items():
            if not value:
                os.environ.pop(key, None)
        yield


def test_settings_travel_but_credentials_do_not():
    with environ({"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "tok",
                  "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://store:9000"}):
        settings = storage_settings(compose_config(["storage.profile=team"]))
    assert settings == {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://store:9000",
                        "AWS_PROFILE": "team"}


def test_a_worker_without_credentials_stops_at_start_saying_where_it_looked(no_credentials, tmp_path):
    from gandist.launchers.local import run_local

    cfg = local_cfg("s3://nowhere/data", tmp_path, "nocreds")
    with pytest.raises(CredentialsError) as info:
        run_local(cfg)
    message = str(info.value)
    for where in ("s3://nowhere/data", "rank 0", "AWS_ACCESS_KEY_ID", "~/.aws/credentials", "web-identity",
                  "instance metadata", "Kubernetes", "ray start"):
        assert where in message, where


def test_the_driver_stops_too_and_a_named_profile_that_is_missing_is_named(no_credentials, capsys):
    assert main(["train", "data.url=s3://nowhere/data", "launcher.name=local", "trainer.num_workers=1"]) == 2
    assert "the driver (gandist train) found no object-store credentials" in capsys.readouterr().err
    with pytest.raises(CredentialsError, match="ghost"):
        check_credentials(compose_config(["data.url=s3://nowhere/data", "storage.profile=ghost"]))


def test_local_urls_need_no_credentials(no_credentials):
    check_credentials(compose_config(["data.url=/data", "run.storage=file:///runs"]))


@pytest.mark.parametrize("override", ["data.url=s3://user:hunter2@host/data",
                                      "storage.endpoint_url=http://minio:hunter2@store:9000",
                                      "launcher.ray_address=ray://admin:hunter2@head:10001"])
def test_a_url_with_a_password_is_refused_without_repeating_it(override):
    with pytest.raises(ConfigError) as info:
        compose_config([override])
    assert "carries a password" in str(info.value) and "hunter2" not in str(info.value)
    assert "(docs/data.md: Credentials)" in str(info.value)  # the heading tests/test_readme.py checks exists
