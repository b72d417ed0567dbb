"""
`python -m apps.vae_gan.train` reproduces checkpoints/vae_gan/: three VAEs, a GAN and a WGAN-GP on MNIST-5k,
the 2-D toy W1 curves, and the held-out figures, in one run through Accelerate (shared/training.py).

Data: the 4,500 training digits of `shared.data.mnist5k()`; the VAEs see them binarised once with a fixed
seed (each pixel Bernoulli(grey / 255)), exactly the binarisation the autoregressive topic uses, so the
held-out likelihoods of both topics are on the same 500 binary digits. The GANs see the grey digits in
[-1, 1] (a GAN has no likelihood to define, and the digit metric's classifier reads grey digits).

Held-out figures (training_report.json): the ELBO and the IWAE bound (k = 64) in nats per image and in
bits per dimension (nats / (784 ln 2)); samples of every model scored by the shared digit metric.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from apps.autoregressive.model import bits_per_dim
from apps.autoregressive.train import binarised_digits  # deliberate reuse: the same binary digits
from apps.vae_gan.model import (
    MLPVAE,
    CategoricalVAE,
    CategoricalVAEConfig,
    ConvVAE,
    ConvVAEConfig,
    Critic,
    DCGANConfig,
    Generator,
    MLPVAEConfig,
    clip_weights,
    critic_loss,
    elbo,
    generator_loss,
    gradient_penalty,
    iwae_bound,
)
from apps.vae_gan.toy import ToyRecipe, train_toy
from shared.checkpoint import save_model
from shared.data import mnist5k
from shared.training import OptimizerRecipe, decay_and_no_decay, seeded_accelerator

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT_DIR = ROOT / "checkpoints" / "vae_gan"
TRAIN_COMMAND = "python -m apps.vae_gan.train"
IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE
IWAE_SAMPLES = 64
SCORED_SAMPLES = 1000  # as many as the flow and diffusion topics score, so FDs compare
TOY_DENSITIES_TRAINED = ("8 gaussians", "two moons", "rings")
TOY_STEPS = 300

VAES = {
    "mlp_vae": (MLPVAE, MLPVAEConfig),
    "conv_vae": (ConvVAE, ConvVAEConfig),
    "gumbel_vae": (CategoricalVAE, CategoricalVAEConfig),
}
GANS = {"gan": "non-saturating", "wgan_gp": "wgan-gp"}


@dataclass
class GANRecipe:
    steps: int  # generator steps
    batch_size: int
    learning_rate: float
    betas: tuple[float, float]
    critic_steps: int = 1  # critic updates per generator step
    penalty: float = 10.0  # WGAN-GP's lambda
    clip: float = 0.01  # WGAN's c


VAE_RECIPES = {
    "mlp_vae": OptimizerRecipe(steps=1500, batch_size=64, learning_rate=1e-3, warmup_steps=100, weight_decay=0.0),
    "conv_vae": OptimizerRecipe(steps=800, batch_size=32, learning_rate=2e-3, warmup_steps=100, weight_decay=0.0),
    "gumbel_vae": OptimizerRecipe(steps=1500, batch_size=64, learning_rate=1e-3, warmup_steps=100, weight_decay=0.0),
}
GAN_RECIPES = {  # DCGAN's Adam(2e-4, beta1 0.5); WGAN-GP's Adam((0.5, 0.9)), 5 critic steps, lambda 10 (lr 2e-4, not 1e-4)
    "gan": GANRecipe(steps=800, batch_size=64, learning_rate=2e-4, betas=(0.5, 0.999)),
    "wgan_gp": GANRecipe(steps=250, batch_size=64, learning_rate=2e-4, betas=(0.5, 0.9), critic_steps=5),
}
TINY_CONFIGS = {  # for the smoke test
    "mlp_vae": MLPVAEConfig(hidden=(32,)),
    "conv_vae": ConvVAEConfig(block_out_channels=(8, 8), norm_num_groups=4, mid_block_add_attention=False),
    "gumbel_vae": CategoricalVAEConfig(hidden=(32,), latent_variables=4, categories=3),
    "gan": DCGANConfig(latent_dim=8, generator_channels=8, critic_channels=4),
}


def grey_digits() -> dict[str, torch.Tensor]:
    """{"train": (4500, 1, 28, 28), "held_out": (500, 1, 28, 28)} grey digits in [0, 1]."""
    data = mnist5k()
    return {
        split: torch.as_tensor(images).float().div(255).unsqueeze(1)
        for split, images in (("train", data.train_images), ("held_out", data.validation_images))
    }


def binary_digits() -> dict[str, torch.Tensor]:
    """The autoregressive topic's binarised digits as images (N, 1, 28, 28)."""
    return {split: flat.view(-1, 1, IMAGE_SIDE, IMAGE_SIDE) for split, flat in binarised_digits().items()}


def batches(images: torch.Tensor, batch_size: int, steps: int, seed: int):
    """`steps` random batches (without replacement within a pass over the data)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    position = 0
    for _ in range(steps):
        if position + batch_size > len(images):
            order, position = torch.randperm(len(images), generator=generator), 0
        yield images[order[position : position + batch_size]]
        position += batch_size


def train_vae(name: str, model, recipe: OptimizerRecipe, train: torch.Tensor, accelerator) -> dict:
    """Maximise the ELBO (the Gumbel VAE on its relaxation, at the annealed temperature)."""
    optimizer = torch.optim.AdamW(
        decay_and_no_decay(model, recipe.weight_decay), lr=recipe.learning_rate, betas=recipe.betas
    )
    anneal = model.config.temperature_at if isinstance(model, CategoricalVAE) else None
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    started, recent = time.perf_counter(), []
    for step, x in enumerate(batches(train, recipe.batch_size, recipe.steps, seed=1)):
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        temperature = anneal(step) if anneal is not None else None
        loss = -elbo(model, x.to(accelerator.device), temperature=temperature).mean()
        optimizer.zero_grad()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        recent = (recent + [loss.item()])[-100:]
        if step % 500 == 0 or step == recipe.steps - 1:
            print(f"{name} step {step}: -ELBO {sum(recent) / len(recent):.1f} nats", flush=True)
    model = accelerator.unwrap_model(model).eval()
    return {
        "training_minutes": round((time.perf_counter() - started) / 60, 2),
        "train_negative_elbo": sum(recent) / len(recent),
    }


def train_gan(name: str, loss: str, config: DCGANConfig, recipe: GANRecipe, train: torch.Tensor, accelerator):
    """The generator against the critic with `loss`; `train` holds grey digits in [0, 1]."""
    generator_net, critic = Generator(config), Critic(config)
    generator_optimizer = torch.optim.Adam(generator_net.parameters(), lr=recipe.learning_rate, betas=recipe.betas)
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=recipe.learning_rate, betas=recipe.betas)
    generator_net, critic, generator_optimizer, critic_optimizer = accelerator.prepare(
        generator_net, critic, generator_optimizer, critic_optimizer
    )
    noise = torch.Generator().manual_seed(2)
    real_batches = batches(train * 2 - 1, recipe.batch_size, recipe.steps * recipe.critic_steps, seed=3)
    started, critic_values = time.perf_counter(), []
    for step in range(recipe.steps):
        for _ in range(recipe.critic_steps):
            real = next(real_batches).to(accelerator.device)
            with torch.no_grad():
                fake = generator_net(torch.randn(recipe.batch_size, config.latent_dim, generator=noise))
            real_scores, fake_scores = critic(real), critic(fake)
            objective = critic_loss(loss, real_scores, fake_scores)
            if loss == "wgan-gp":
                objective = objective + recipe.penalty * gradient_penalty(critic, real, fake, noise)
            critic_optimizer.zero_grad()
            accelerator.backward(objective)
            critic_optimizer.step()
            if loss == "wgan-clip":
                clip_weights(critic, recipe.clip)
        critic_values.append((real_scores.mean() - fake_scores.mean()).detach().item())
        objective = generator_loss(
            loss, critic(generator_net(torch.randn(recipe.batch_size, config.latent_dim, generator=noise)))
        )
        generator_optimizer.zero_grad()
        accelerator.backward(objective)
        generator_optimizer.step()
        if step % 250 == 0 or step == recipe.steps - 1:
            print(f"{name} step {step}: critic gap E f(real) - E f(fake) {critic_values[-1]:.3f}", flush=True)
    generator_net = accelerator.unwrap_model(generator_net).eval()
    tail = critic_values[-100:]
    report = {
        "training_minutes": round((time.perf_counter() - started) / 60, 2),
        "final_critic_gap": sum(tail) / len(tail),
    }
    return generator_net, report


@torch.no_grad()
def held_out_bounds(model, held_out: torch.Tensor, iwae_samples: int = IWAE_SAMPLES, batch_size: int = 100) -> dict:
    """Mean ELBO (one exact posterior sample per image) and IWAE bound on the held-out binary digits, as
    negative log-likelihood bounds in nats per image and bits per dimension."""
    torch.manual_seed(0)
    negative_elbo = -torch.cat([elbo(model, chunk) for chunk in held_out.split(batch_size)]).mean().item()
    generator = torch.Generator().manual_seed(0)
    negative_iwae = (
        -torch.cat([iwae_bound(model, chunk, iwae_samples, generator) for chunk in held_out.split(batch_size)])
        .mean()
        .item()
    )
    return {
        "negative_elbo_nats": round(negative_elbo, 2),
        f"negative_iwae{iwae_samples}_nats": round(negative_iwae, 2),
        "negative_elbo_bits_per_dim": round(bits_per_dim(negative_elbo, PIXELS), 4),
        f"negative_iwae{iwae_samples}_bits_per_dim": round(bits_per_dim(negative_iwae, PIXELS), 4),
    }


def sample_quality(model, count: int = SCORED_SAMPLES, seed: int = 0) -> dict:
    """The shared digit metric on `count` samples (seeded), and the sampling time per image."""
    from shared.image_metric import image_quality

    started = time.perf_counter()
    images = model.generate(count, torch.Generator().manual_seed(seed))
    milliseconds = (time.perf_counter() - started) * 1000 / count
    report = image_quality(images)
    return {**report.as_row(), "class_histogram": report.class_histogram, "ms_per_image": round(milliseconds, 3)}


def toy_curves(steps: int) -> list[dict]:
    """GAN vs WGAN (clipping) vs WGAN-GP on each 2-D density: critic estimate and exact W1 over training."""
    return [
        train_toy(density, loss, ToyRecipe(steps=steps)).summary()
        for density in TOY_DENSITIES_TRAINED
        for loss in ("non-saturating", "wgan-clip", "wgan-gp")
    ]


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--output", type=Path, default=CHECKPOINT_DIR)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="tiny models and a few steps (the smoke test)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    arguments = parse_arguments(argv)
    torch.set_num_threads(arguments.threads)
    accelerator = seeded_accelerator(seed=0)
    started = time.perf_counter()
    binary, grey = binary_digits(), grey_digits()
    report = {
        "command": TRAIN_COMMAND + (" --tiny" if arguments.tiny else "") + f" --threads {arguments.threads}",
        "data": "MNIST-5k: 4,500 training and 500 held-out digits; VAEs on the autoregressive topic's fixed "
        "binarisation (Bernoulli(grey / 255), seeds 0 and 1), GANs on grey digits",
        "models": {},
    }
    held_out = binary["held_out"] if not arguments.tiny else binary["held_out"][:20]
    for name, (model_class, config_class) in VAES.items():
        config = TINY_CONFIGS[name] if arguments.tiny else config_class()
        recipe = VAE_RECIPES[name] if not arguments.tiny else OptimizerRecipe(4, 8, 1e-3, 1, weight_decay=0.0)
        model = model_class(config)
        entry = train_vae(name, model, recipe, binary["train"], accelerator)
        model = model.cpu().eval()
        save_model(model, config, arguments.output / name)
        entry.update(
            parameters=sum(p.numel() for p in model.parameters()), recipe=asdict(recipe), config=asdict(config)
        )
        entry["held_out"] = held_out_bounds(model, held_out, IWAE_SAMPLES if not arguments.tiny else 2)
        entry["samples"] = sample_quality(model, SCORED_SAMPLES if not arguments.tiny else 8)
        report["models"][name] = entry
        print(name, json.dumps(entry["held_out"]), flush=True)
    for name, loss in GANS.items():
        config = TINY_CONFIGS["gan"] if arguments.tiny else DCGANConfig()
        recipe = GAN_RECIPES[name] if not arguments.tiny else GANRecipe(2, 8, 1e-4, (0.5, 0.9), critic_steps=2)
        generator_net, entry = train_gan(name, loss, config, recipe, grey["train"], accelerator)
        generator_net = generator_net.cpu().eval()
        save_model(generator_net, config, arguments.output / name)
        entry.update(
            parameters=sum(p.numel() for p in generator_net.parameters()), recipe=asdict(recipe), config=asdict(config)
        )
        entry["samples"] = sample_quality(generator_net, SCORED_SAMPLES if not arguments.tiny else 8)
        report["models"][name] = entry
        print(name, json.dumps(entry["samples"]), flush=True)
    report["toys"] = toy_curves(TOY_STEPS if not arguments.tiny else 2)
    report["training_minutes"] = round((time.perf_counter() - started) / 60, 2)
    report["threads"] = arguments.threads
    (arguments.output / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"done in {report['training_minutes']} minutes", flush=True)
    return report


if __name__ == "__main__":
    main()
