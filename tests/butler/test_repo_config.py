"""Repository configuration set at ``butler create``: datastore root and storage options,
registry URL without its password, repositories on an object store, the repository index."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from test_butler import _populate

from butler import Butler
from butler.cli import main


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _s3_config(s3, root):
    fs = s3.filesystem()
    return yaml.safe_load(fs.cat_file(f"{root.removeprefix('s3://')}/butler.yaml"))


def test_datastore_root_and_storage_options_are_kept(tmp_path, s3_server, s3_bucket):
    store = f"s3://{s3_bucket}/files"
    result = _cli(
        "create", tmp_path / "repo", "--datastore-root", store,
        "--storage-option", f"endpoint_url={s3_server.endpoint_url}",
        "--storage-option", "anon=false",
    )
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "repo" / "butler.yaml").read_text())
    assert config["datastore"]["root"] == store
    assert config["datastore"]["storage_options"] == {
        "endpoint_url": s3_server.endpoint_url, "anon": False,
    }
    butler = Butler(tmp_path / "repo", run="run1")
    assert butler.limited_spec().storage_options["endpoint_url"] == s3_server.endpoint_url
    _populate(butler)
    image = np.arange(12.0).reshape(3, 4)
    ref = butler.put(image, "img", instrument="Cam", visit=10, detector=1)
    assert butler.get_uri(ref).startswith(store)
    np.testing.assert_array_equal(butler.get(ref), image)
    np.testing.assert_array_equal(butler.limited().get(ref, info=butler.registry.get_stored_info(
        [ref])[ref.id]), image)


@pytest.mark.parametrize("option", ["secret=abc", "aws_secret_access_key=abc", "token=x"])
def test_credentials_are_never_stored(tmp_path, option):
    result = _cli("create", tmp_path / "repo", "--storage-option", option)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and option.split("=")[0] in lines[0] and "credential" in lines[0]
    assert not (tmp_path / "repo").exists()  # a failed create leaves nothing behind


def test_bad_storage_option_syntax_is_a_usage_error(tmp_path):
    result = _cli("create", tmp_path / "repo", "--storage-option", "endpoint_url")
    assert result.exit_code == 2 and "--storage-option" in result.output
    assert not (tmp_path / "repo").exists()


def test_password_is_used_but_never_written(tmp_path, postgres_server):
    url = postgres_server.url(postgres_server.create_database())
    result = _cli("create", tmp_path / "repo", "--db", url)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "repo" / "butler.yaml").read_text()
    assert postgres_server.password not in text
    assert yaml.safe_load(text)["registry"]["db"] == url.replace(
        f":{postgres_server.password}@", "@"
    )
    assert postgres_server.password not in result.output
    # later commands take the password from the environment (libpq's PGPASSWORD)
    env = dict(os.environ, PGPASSWORD=postgres_server.password)
    check = subprocess.run(
        [sys.executable, "-m", "butler.cli", "query-collections", str(tmp_path / "repo")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert check.returncode == 0, check.stderr


def test_repository_on_the_object_store(tmp_path, s3_server, s3_bucket, postgres_server):
    root = f"s3://{s3_bucket}/repo"
    url = postgres_server.url(postgres_server.create_database())
    result = _cli("create", root, "--db", url)
    assert result.exit_code == 0, result.output
    config = _s3_config(s3_server, root)
    assert config["datastore"]["root"] == "<root>"
    assert postgres_server.password not in yaml.safe_dump(config)
    os.environ["PGPASSWORD"] = postgres_server.password
    try:
        butler = Butler(root, run="run1")
        _populate(butler)
        ref = butler.put({"n": 1}, "summary", instrument="Cam", visit=10)
        assert butler.get_uri(ref).startswith(root + "/run1/")
        assert Butler(root).get(ref) == {"n": 1}
        again = _cli("create", root, "--db", url)
        assert again.exit_code == 1 and "already exists" in again.output
    finally:
        del os.environ["PGPASSWORD"]


def test_object_store_repository_needs_a_registry_server(s3_server, s3_bucket):
    result = _cli("create", f"s3://{s3_bucket}/repo")
    assert result.exit_code == 1 and "--db" in result.output
    assert s3_server.filesystem().ls(s3_bucket) == []


def test_repository_index_maps_short_names(tmp_path, monkeypatch):
    Butler.create(tmp_path / "somewhere" / "repo")
    index = tmp_path / "index.yaml"
    index.write_text(yaml.safe_dump({"dp1": str(tmp_path / "somewhere" / "repo")}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKYQUANTA_REPOSITORY_INDEX", str(index))
    assert Butler("dp1").config.root == str(tmp_path / "somewhere" / "repo")
    result = _cli("query-collections", "nope")
    assert result.exit_code == 1 and "'nope'" in result.output
    monkeypatch.delenv("SKYQUANTA_REPOSITORY_INDEX")
    result = _cli("query-collections", "dp1")
    assert result.exit_code == 1 and "SKYQUANTA_REPOSITORY_INDEX" in result.output
