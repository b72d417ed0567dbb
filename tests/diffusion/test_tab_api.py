"""The diffusion tab through its API, as a remote user or the browser calls it, and the engine below it."""

import pytest
import torch
from gradio_client.exceptions import AppError

from apps.diffusion import DEFAULT_GUIDANCE
from apps.diffusion import side_by_side as sbs


def test_sample_returns_both_grids_the_verdict_and_the_trajectory(client):
    notes, ours, reference, badges, trajectory, chart, code = client.predict(
        "DDIM", 10, 0.0, 3, 6, api_name="/diffusion_sample"
    )
    assert ours and reference and chart is not None
    assert "max |difference|" in badges and "per image" in badges
    assert len(trajectory) == 6 and "predicted x_0" in trajectory[0]["caption"]
    assert "def ddim_step" in code


def test_ddpm_with_eta_notes_that_eta_is_ignored(client):
    notes, *_, code = client.predict("DDPM", 4, 0.5, 0, 2, api_name="/diffusion_sample")
    assert "eta is a DDIM setting" in notes and "def ddpm_step" in code


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("DDIM", 0, 0.0, 0, 4), "less than minimum value 1"),
        (("DDIM", 10**6, 0.0, 0, 4), "greater than maximum value 1000"),
        (("DDIM", None, 0.0, 0, 4), r"'Steps \(DDPM was trained with 1,000\)' is empty"),
        (("DDIM", 10, 1.5, 0, 4), "greater than maximum value 1"),
        (("DDIM", 10, -0.5, 0, 4), "less than minimum value 0"),
        (("DDIM", 10, 0.0, 0, 500), "greater than maximum value 64"),
        (("DDPM", 1000, 0.0, 0, 64), "network calls per side"),
        (("DDIM", 10, 0.0, -1, 4), "less than minimum value 0"),
        (("Euler", 10, 0.0, 0, 4), "not in the list of choices"),
    ],
)
def test_bad_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/diffusion_sample")


def test_offline_hub_id_gives_a_clear_message(client):
    with pytest.raises(AppError, match="(?i)network|offline|internet"):
        client.predict("google/ddpm-cifar10-32", api_name="/diffusion_load")


def test_missing_folder_gives_a_clear_message(client, tmp_path):
    with pytest.raises(AppError, match="No checkpoint folder"):
        client.predict(str(tmp_path / "nothing-here"), api_name="/diffusion_load")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("steps", 0, "Steps must be"),
        ("steps", 1001, "Steps must be"),
        ("eta", 2.0, "eta must be"),
        ("count", 0, "number of images"),
        ("sampler", "PNDM", "Unknown sampler"),
        ("seed", -5, "seed must be"),
    ],
)
def test_engine_validates_what_the_ui_cannot(field, value, message):
    request = sbs.SamplingRequest(**{**dict(sampler="DDIM", steps=10, eta=0.0, seed=0, count=2), field: value})
    with pytest.raises(ValueError, match=message):
        request.validate(sbs.diffusion_model())


def test_shipped_model_ddim20_equals_the_ddimpipeline():
    """The issue's end-to-end check on the real weights: 20 DDIM steps from the same noise."""
    model = sbs.diffusion_model()
    request = sbs.SamplingRequest("DDIM", 20, 0.0, 11, 4)
    ours, trajectory = sbs.run_ours(model, request)
    reference = sbs.run_reference(model, request)
    assert (ours.images - reference.images).abs().max().item() < 1e-4
    assert len(trajectory.frames) == 6


def test_shipped_model_samples_look_like_digits_to_the_classifier():
    from shared.image_metric import image_quality

    ours, _ = sbs.run_ours(sbs.diffusion_model(), sbs.SamplingRequest("DDIM", 20, 0.0, 0, 32))
    report = image_quality(ours.images)
    assert report.mean_confidence > 0.7 and report.classes_present >= 8
    assert torch.isfinite(ours.images).all()


# --- Score SDEs and likelihoods ----------------------------------------------------

MIXTURE, DIGITS_DATA = sbs.SDE_DATA
PC, EM, ODE = sbs.SDE_SAMPLERS


def test_sde_panel_matches_diffusers_on_the_mixture(client):
    notes, plot, ours, reference, badges, code = client.predict(
        MIXTURE, "VE", PC, 40, 0.16, 1, 300, api_name="/diffusion_sde"
    )
    assert plot is not None and ours is None and "max |difference|" in badges and "80 network calls" in badges
    assert "def langevin_step" in code


def test_sde_panel_says_when_diffusers_has_no_twin(client):
    notes, plot, *_, badges, code = client.predict(MIXTURE, "VP", ODE, 10, 0.16, 0, 100, api_name="/diffusion_sde")
    assert "runs on our side alone" in notes and "snr is the corrector's setting" in notes
    assert "def probability_flow_ode" in code and "max |difference|" not in badges


def test_sde_panel_samples_digits_with_the_vp_score(client):
    notes, plot, ours, reference, badges, code = client.predict(
        DIGITS_DATA, "VP", EM, 30, 0.16, 0, 2, api_name="/diffusion_sde"
    )
    assert ours and reference and "max |difference|" in badges and "digit classifier" in badges


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((DIGITS_DATA, "VE", PC, 20, 0.16, 0, 2), "choose the VP SDE"),
        ((DIGITS_DATA, "VP", ODE, 20, 0.16, 0, 40), "at most 16 digits"),
        ((DIGITS_DATA, "VP", PC, 1000, 0.16, 0, 64), "network calls"),
        ((MIXTURE, "VE", PC, 0, 0.16, 0, 100), "less than minimum value 1"),
        ((MIXTURE, "VE", PC, 10, 0.0, 0, 100), "less than minimum value 0.01"),
        ((MIXTURE, "VE", PC, 10, 1.5, 0, 100), "greater than maximum value 1"),
        ((MIXTURE, "VE", PC, 10.5, 0.16, 0, 100), "whole number"),
        ((MIXTURE, "VE", PC, 10, 0.16, 0, 10**6), "greater than maximum value 2000"),
        ((MIXTURE, "VE", "Heun", 10, 0.16, 0, 100), "not in the list of choices"),
    ],
)
def test_sde_bad_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/diffusion_sde")


def test_likelihood_table_puts_the_ode_next_to_the_exact_density(client):
    table, code = client.predict(30, 2, api_name="/diffusion_likelihood")
    assert table.count("ODE, exact divergence") == 2 and "Hutchinson" in table
    assert "def ode_log_likelihood" in code
    for row in table.splitlines():
        if "exact divergence" in row:
            assert abs(float(row.split("|")[4])) < 0.02  # the difference column, bits/dim


@pytest.mark.parametrize(
    "arguments, message",
    [((0, 0), "less than minimum value 1"), ((10**4, 0), "greater than maximum value 500"), ((2.5, 0), "whole number")],
)
def test_likelihood_bad_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/diffusion_likelihood")


def test_guided_panel_draws_the_requested_digit_beside_diffusers(client):
    ours, reference, badges, code = client.predict(7, 2.0, 20, 0, 8, api_name="/diffusion_guided")
    assert ours and reference and "max |difference|" in badges
    difference = float(badges.split("max |difference| ")[1].split()[0])
    assert difference < 1e-3  # the same weights, noise and guidance in both loops
    assert "as a 7 (w = 2)" in badges and "def guided_noise" in code


def test_guided_samples_are_read_as_the_requested_digit():
    """The shipped conditional UNet at the default guidance: the digit classifier reads what was asked
    (an unconditional model would score about 0.1)."""
    read = [
        sbs.run_guided(sbs.GuidedRequest(digit, DEFAULT_GUIDANCE, 20, 5, 1)).read_as_requested for digit in range(10)
    ]
    assert sum(read) / 10 >= 0.8, read


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((10, 2.0, 20, 0, 4), "greater than maximum value 9"),
        ((3.5, 2.0, 20, 0, 4), "whole number"),
        ((7, -1.0, 20, 0, 4), "less than minimum value 0"),
        ((7, 6.0, 20, 0, 4), "greater than maximum value 5"),
        ((7, 2.0, 100, 0, 64), "network calls per side"),
        ((7, 2.0, 0, 0, 4), "less than minimum value 1"),
        ((7, 2.0, 20, 0.5, 4), "whole number"),
    ],
)
def test_guided_bad_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/diffusion_guided")


@pytest.mark.parametrize(
    "field, value, message",
    [("digit", 10, "digit from 0 to 9"), ("guidance", 7.0, "guidance scale"), ("count", 0, "images")],
)
def test_guided_engine_validates_what_the_ui_cannot(field, value, message):
    request = sbs.GuidedRequest(7, 2.0, 20, 4, 0)
    setattr(request, field, value)
    with pytest.raises(ValueError, match=message):
        request.validate(sbs.conditional_model())
