"""The flows tab through its API, as a remote user or the browser calls it, and the engine below it."""

import pytest
import torch
from gradio_client.exceptions import AppError

from apps.flow import side_by_side as sbs
from apps.flow import tab, toy

REFLOW = list(sbs.RECTIFIED)[1]


def test_toy_rectified_flow_trains_in_the_request_and_reflow_straightens_the_paths(client):
    notes, plot, summary, code = client.predict("8 gaussians", toy.KINDS[1], 3, "Heun", 0, api_name="/flow_toy")
    assert plot is not None and "Path straightness" in summary and "def heun_step" in code
    view = sbs.toy_view("8 gaussians", toy.KINDS[1], 3, "Heun", 0)  # cached: same process, no retraining
    curved, straight = view.path_straightness.values()
    assert straight < 0.2 * curved
    assert view.paths["1-rectified"].shape == (4, sbs.TOY_TRAJECTORIES, 2)


def test_toy_realnvp_gives_an_exact_density_that_integrates_to_about_one():
    view = sbs.toy_view("two moons", toy.KINDS[0], 1, "Euler", 0)
    density, axis = view.log_density
    cell = (axis[1] - axis[0]) ** 2
    assert 0.9 < density.sum() * cell < 1.05  # nearly all the mass lies inside the plotted square
    assert view.mean_log_likelihood > -2.0
    assert tab.toy_figure(view, 1, "Euler") is not None


def test_flow_samples_show_the_bits_per_dim(client):
    notes, grid, summary, code = client.predict("Glow", 0.7, 4, 0, api_name="/flow_sample")
    assert grid and "Held-out bits/dim" in summary and "4.34" in summary and "class Coupling" in code


def test_rectified_flow_ours_equals_diffusers_scheduler_loop(client):
    notes, ours, reference, badges, code = client.predict(REFLOW, 2, 0, 4, api_name="/flow_rectified")
    assert ours and reference and "max |difference|" in badges and "def euler_step" in code


@pytest.mark.parametrize(
    "api_name, arguments, message",
    [
        ("/flow_toy", ("two moons", toy.KINDS[1], 0, "Euler", 0), "less than minimum value 1"),
        ("/flow_toy", ("two moons", toy.KINDS[1], 10**6, "Euler", 0), "greater than maximum value 200"),
        ("/flow_toy", ("swiss roll", toy.KINDS[1], 4, "Euler", 0), "not in the list of choices"),
        ("/flow_toy", ("two moons", toy.KINDS[1], None, "Euler", 0), "is empty"),
        ("/flow_sample", ("Glow", 0, 4, 0), "less than minimum value 0.05"),
        ("/flow_sample", ("Glow", -1, 4, 0), "less than minimum value 0.05"),
        ("/flow_sample", ("MAF", 0.7, 4, 0), "not in the list of choices"),
        ("/flow_rectified", (REFLOW, 0, 0, 4), "less than minimum value 1"),
        ("/flow_rectified", (REFLOW, 10**6, 0, 4), "greater than maximum value 1000"),
        ("/flow_rectified", (REFLOW, 1000, 0, 64), "network calls per side"),
        ("/flow_rectified", (REFLOW, 2, -3, 4), "less than minimum value 0"),
    ],
)
def test_bad_input_gives_a_clear_message(client, api_name, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name=api_name)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sbs.toy_view("swiss roll", toy.KINDS[0], 4, "Euler"), "Unknown toy density 'swiss roll'"),
        (lambda: sbs.toy_view("rings", "MAF", 4, "Euler"), "Unknown model kind"),
        (lambda: sbs.toy_view("rings", toy.KINDS[1], 0, "Euler"), "Steps must be a whole number from 1 to 200"),
        (lambda: sbs.toy_view("rings", toy.KINDS[1], 10**6, "Euler"), "Steps must be a whole number from 1 to 200"),
        (lambda: sbs.toy_view("rings", toy.KINDS[1], 4, "RK4"), "Unknown solver"),
        (lambda: sbs.toy_view("rings", toy.KINDS[1], 4, "Euler", seed=-1), "seed must be"),
        (lambda: sbs.flow_samples("Glow", 0.0, 4, 0), "temperature must be above 0"),
        (lambda: sbs.flow_samples("Glow", -0.5, 4, 0), "temperature must be above 0"),
        (lambda: sbs.flow_samples("Glow", 0.7, 0, 0), "number of images"),
        (lambda: sbs.flow_samples("MAF", 0.7, 4, 0), "Unknown flow"),
        (lambda: sbs.RectifiedRequest(REFLOW, 0, 0, 4).validate(), "from 1 to 1,000"),
        (lambda: sbs.RectifiedRequest(REFLOW, 10**6, 0, 4).validate(), "from 1 to 1,000"),
        (lambda: sbs.RectifiedRequest("3-rectified", 4, 0, 4).validate(), "Unknown model"),
        (lambda: sbs.RectifiedRequest(REFLOW, 500, 0, 64).validate(), "network calls per side"),
    ],
)
def test_engine_validates_what_the_ui_cannot(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_toy_densities_have_their_shapes_and_an_unknown_one_is_refused():
    for name in toy.DENSITIES:
        points = toy.sample_density(name, 500, seed=1)
        assert points.shape == (500, 2) and points.abs().max() < toy.PLOT_LIMIT
        assert torch.equal(points, toy.sample_density(name, 500, seed=1))
    with pytest.raises(ValueError, match="Unknown toy density"):
        toy.sample_density("spiral", 10)


@pytest.mark.parametrize("model", list(sbs.RECTIFIED))
def test_shipped_rectified_flows_equal_the_scheduler_loop_at_8_steps(model):
    request = sbs.RectifiedRequest(model, 8, 5, 4)
    request.validate()
    ours, reference = sbs.run_ours(request), sbs.run_reference(request)
    assert (ours.images - reference.images).abs().max().item() < tab.PIXEL_TOLERANCE


def test_reflow_makes_better_one_step_digits_than_the_first_flow():
    from shared.image_metric import image_quality

    reports = {}
    for model in sbs.RECTIFIED:
        ours = sbs.run_ours(sbs.RectifiedRequest(model, 1, 0, 64))
        reports[model] = image_quality(ours.images)
    first, second = reports.values()
    assert second.frechet_distance < first.frechet_distance
