"""Publishing: a folder per order line and run, inside the publish root, built then renamed."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.artifacts import LocalArtifactStore
from activities.output import OutputActivities, PublishAssetInput, PublishAssetOutput

STILL = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


@pytest.fixture
def outputs(store: LocalArtifactStore, tmp_path: Path) -> OutputActivities:
    return OutputActivities(store, tmp_path / "publish")


@pytest.fixture
def still(store: LocalArtifactStore, tmp_path: Path):
    path = tmp_path / "render.png"
    path.write_bytes(STILL)
    return store.put_file(path, role="still")


def _folder(output: PublishAssetOutput) -> Path:
    folders = {Path(asset.path).parent for asset in output.published}
    assert len(folders) == 1
    return folders.pop()


def _inside(folder: Path, root: Path) -> bool:
    return folder.resolve().is_relative_to(root.resolve()) and folder.resolve() != root.resolve()


async def _publish(outputs: OutputActivities, order_line_id: str, still) -> PublishAssetOutput:
    return await outputs.publish_asset(PublishAssetInput(order_line_id=order_line_id, still=still))


async def test_a_publish_copies_the_deliverables_and_a_manifest_into_the_order_lines_folder(
    outputs, store, still
):
    output = await _publish(outputs, "line-42", still)
    [asset] = output.published
    folder = Path(asset.path).parent
    assert (asset.role, asset.sha256, asset.media_type) == ("still", still.sha256, "image/png")
    assert Path(asset.path).name == "render.still.png" and Path(asset.path).read_bytes() == STILL
    assert folder.parent.parent == outputs.publish_root.resolve()
    assert folder.parent.name.startswith("line-42-")
    manifest = json.loads(store.path_of(output.manifest).read_text())
    assert manifest == {"order_line_id": "line-42", "assets": [asset.model_dump()]}
    assert (folder / "manifest.json").read_text() == store.path_of(output.manifest).read_text()
    assert sorted(path.name for path in folder.iterdir()) == ["manifest.json", "render.still.png"]
    assert [path.name for path in folder.parent.iterdir()] == [folder.name]  # no staging left


async def test_ids_that_sanitise_alike_publish_to_different_folders(outputs, still):
    slash = _folder(await _publish(outputs, "a/b", still))
    underscore = _folder(await _publish(outputs, "a_b", still))
    assert slash.parent != underscore.parent
    assert _inside(slash, outputs.publish_root) and _inside(underscore, outputs.publish_root)


@pytest.mark.parametrize("order_line_id", ["..", ".", "../../escape", "/etc/passwd", "a/../../b", "..\\.."])
async def test_no_id_escapes_the_publish_root(outputs, still, order_line_id, tmp_path):
    folder = _folder(await _publish(outputs, order_line_id, still))
    assert folder.parent.parent == outputs.publish_root.resolve()
    assert not folder.parent.name.startswith(".")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["publish", "render.png", "store"]


async def test_two_runs_of_the_same_order_line_publish_to_different_folders(outputs, still):
    first = _folder(await _publish(outputs, "line-7", still))
    second = _folder(await _publish(outputs, "line-7", still))
    assert first != second and first.parent == second.parent
    assert first.is_dir() and second.is_dir()


async def test_the_run_folder_is_named_by_the_temporal_workflow_and_a_retry_replaces_it(outputs, still):
    async def publish(workflow_id: str) -> Path:
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, workflow_id=workflow_id)
        output = await env.run(outputs.publish_asset, PublishAssetInput(order_line_id="line-9", still=still))
        return _folder(output)

    first = await publish("order-line-9-render")
    (first / "left-by-the-first-attempt").write_text("x")
    retried = await publish("order-line-9-render")
    other_run = await publish("order-line-9-render-rerun")
    assert retried == first and first.name.startswith("order-line-9-render-")
    assert not (first / "left-by-the-first-attempt").exists()  # the retry's folder replaced it
    assert other_run != first and other_run.parent == first.parent
    assert sorted(path.name for path in first.parent.iterdir()) == sorted([first.name, other_run.name])


@pytest.mark.parametrize("order_line_id", ["", "x" * 129])
async def test_empty_or_overlong_ids_are_refused(outputs, still, order_line_id):
    with pytest.raises(ApplicationError) as refused:
        await _publish(outputs, order_line_id, still)
    assert (refused.value.type, refused.value.non_retryable) == ("contract_violation", True)
    assert not outputs.publish_root.exists() or not any(outputs.publish_root.iterdir())


async def test_an_id_of_128_characters_is_accepted(outputs, still):
    assert _inside(_folder(await _publish(outputs, "x" * 128, still)), outputs.publish_root)


async def test_a_corrupt_deliverable_is_never_published(outputs, store, still):
    blob = store.path_of(still)
    before = blob.stat()
    with blob.open("r+b") as handle:
        handle.seek(20)
        handle.write(b"!")
    os.utime(blob, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ApplicationError) as corrupt:
        await _publish(outputs, "line-13", still)
    assert (corrupt.value.type, corrupt.value.non_retryable) == ("artifact_corrupt", True)
    line_folders = list(outputs.publish_root.iterdir())
    assert all(not any(folder.iterdir()) for folder in line_folders)  # no delivery, no staging
