"""A worker reads STEP files by path only under its input roots or as a store reference (an upload),
and never says what exists elsewhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.artifacts import LocalArtifactStore, store_reference
from activities.cad import CadActivities, ResolveStepPathInput
from activities.child_process import ChildJobRunner
from conftest import STEP_FIXTURES


@pytest.fixture
def cad(tmp_path: Path) -> CadActivities:
    return CadActivities(LocalArtifactStore(tmp_path / "store"), ChildJobRunner(), (STEP_FIXTURES,))


@pytest.mark.parametrize(
    "path",
    ["/etc/shadow", "/etc/no-such-file", f"{STEP_FIXTURES}/../../../../etc/passwd", "relative/../../x.step"],
)
async def test_a_path_outside_the_input_roots_is_refused_alike_whether_or_not_it_exists(cad, path):
    with pytest.raises(ApplicationError) as refused:
        await cad.resolve_step_path(ResolveStepPathInput(step_path=path))
    assert (refused.value.type, refused.value.non_retryable) == ("cad_file_not_allowed", True)
    assert "etc" not in refused.value.message and "exist" not in refused.value.message


async def test_a_link_inside_a_root_that_points_outside_is_refused(tmp_path: Path):
    root = tmp_path / "inputs"
    root.mkdir()
    (root / "part.step").symlink_to("/etc/passwd")
    cad = CadActivities(LocalArtifactStore(tmp_path / "store"), ChildJobRunner(), (root,))
    with pytest.raises(ApplicationError) as refused:
        await cad.resolve_step_path(ResolveStepPathInput(step_path=str(root / "part.step")))
    assert refused.value.type == "cad_file_not_allowed"


async def test_a_file_inside_a_root_is_stored_under_its_own_name(cad):
    output = await cad.resolve_step_path(
        ResolveStepPathInput(step_path=str(STEP_FIXTURES / "red_cube_blue_cylinder.step"))
    )
    assert output.source_name == "red_cube_blue_cylinder.step" and output.step_file.role == "step_file"


def test_the_cli_stages_a_local_file_into_the_inputs_root(tmp_path: Path):
    from core.settings import Settings
    from prodgraph.production import stage_input

    settings = Settings(state_dir=tmp_path / "state")
    staged = stage_input(settings, STEP_FIXTURES / "red_cube_blue_cylinder.step")
    assert staged.is_relative_to(settings.input_folders()[0]) and staged.name == "red_cube_blue_cylinder.step"
    assert staged.read_bytes() == (STEP_FIXTURES / "red_cube_blue_cylinder.step").read_bytes()
    assert stage_input(settings, STEP_FIXTURES / "red_cube_blue_cylinder.step") == staged


# --- uploads: store references ---------------------------------------------------------------


def _uploaded(cad: CadActivities, name: str = "red_cube_blue_cylinder.step"):
    """A fixture streamed into the worker's store as the API stores an upload."""
    with cad.store.receive(".step") as incoming:
        incoming.write((STEP_FIXTURES / name).read_bytes())
        return incoming.commit("step_file", "model/step")


async def test_an_uploaded_file_is_read_by_its_store_reference(cad):
    uploaded = _uploaded(cad)
    output = await cad.resolve_step_path(ResolveStepPathInput(step_path=store_reference(uploaded)))
    assert output.step_file == uploaded


@pytest.mark.parametrize(
    "reference",
    ["store:../../etc/passwd", "store:" + "ab" * 32 + "/../../../etc/passwd", "store:/etc/shadow", "store:"],
)
async def test_a_malformed_store_reference_is_refused_like_any_outside_path(cad, reference):
    with pytest.raises(ApplicationError) as refused:
        await cad.resolve_step_path(ResolveStepPathInput(step_path=reference))
    assert refused.value.type == "cad_file_not_allowed" and "etc" not in refused.value.message


async def test_a_store_looking_path_outside_the_store_is_refused(cad, tmp_path: Path):
    uploaded = _uploaded(cad)
    lookalike = tmp_path / "elsewhere" / uploaded.sha256[:2] / f"{uploaded.sha256}.step"
    lookalike.parent.mkdir(parents=True)
    lookalike.write_bytes((STEP_FIXTURES / "red_cube_blue_cylinder.step").read_bytes())
    with pytest.raises(ApplicationError) as refused:
        await cad.resolve_step_path(ResolveStepPathInput(step_path=str(lookalike)))
    assert refused.value.type == "cad_file_not_allowed"


async def test_a_blob_path_inside_the_store_is_no_reference(cad):
    uploaded = _uploaded(cad)  # the store is no input root: only a store reference reads it
    blob = cad.store.root / uploaded.sha256[:2] / f"{uploaded.sha256}.step"
    with pytest.raises(ApplicationError) as refused:
        await cad.resolve_step_path(ResolveStepPathInput(step_path=str(blob)))
    assert refused.value.type == "cad_file_not_allowed"


async def test_a_link_planted_where_a_blob_belongs_is_not_read(cad, tmp_path: Path):
    secret = tmp_path / "secret.step"
    secret.write_bytes((STEP_FIXTURES / "red_cube_blue_cylinder.step").read_bytes())
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    place = cad.store.root / digest[:2] / f"{digest}.step"
    place.parent.mkdir(parents=True)
    place.symlink_to(secret)
    with pytest.raises(ApplicationError) as refused:
        await cad.resolve_step_path(ResolveStepPathInput(step_path=f"store:{digest}.step"))
    assert refused.value.type == "cad_file_not_found" and str(tmp_path) not in refused.value.message


async def test_a_tampered_upload_is_quarantined_not_read(cad):
    uploaded = _uploaded(cad)
    blob = cad.store.root / uploaded.sha256[:2] / f"{uploaded.sha256}.step"
    blob.write_bytes(blob.read_bytes().replace(b"ISO-10303-21", b"ISO-10303-22", 1))
    with pytest.raises(ApplicationError) as refused:
        await cad.resolve_step_path(ResolveStepPathInput(step_path=store_reference(uploaded)))
    assert refused.value.type == "artifact_corrupt"
    assert cad.store.was_quarantined(uploaded.sha256) and not blob.exists()
