"""A worker reads STEP files by path only under its input roots, and never says what exists elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.artifacts import LocalArtifactStore
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
