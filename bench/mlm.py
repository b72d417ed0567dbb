"""Masked language models on this CPU (one thread, the shipped width: 128 wide, 4 heads, length 128):

- gradient checkpointing: for depth 4, 8 and 16, the bytes of activations autograd keeps for the backward pass
  (counted with torch.autograd.graph.saved_tensors_hooks: distinct tensors, parameters excluded) and the time
  of one training step, with and without checkpointing (median of alternating runs);
- ours against transformers on the shipped encoders: forward time of our encoder and BertForMaskedLM /
  RoFormerForMaskedLM (eager attention) on the same weights and batch, median of alternating runs, with the
  largest logit difference;
- held-out masked-token accuracy of the shipped encoders, from their training report.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from apps.mlm.model import POSITION_KINDS, EncoderConfig, MaskedLanguageModel
from apps.mlm.reference import to_hf

RESULTS = Path(__file__).resolve().parent / "results"
PLOT = RESULTS / "mlm_checkpointing.png"
DEPTHS = (4, 8, 16)
BATCH, LENGTH = 16, 128
REPEATS = 5


def saved_activation_bytes(model: MaskedLanguageModel, ids: torch.Tensor, labels: torch.Tensor) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves during one forward pass of the loss."""
    parameters = {p.data_ptr() for p in model.parameters()}
    seen: dict[tuple[int, tuple], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if tensor.data_ptr() not in parameters and key not in seen:
            seen[key] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.masked_loss(ids, labels)
    return sum(seen.values())


def training_step(model: MaskedLanguageModel, ids: torch.Tensor, labels: torch.Tensor) -> float:
    started = time.perf_counter()
    model.masked_loss(ids, labels).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def checkpointing_rows(ids: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    rows = []
    for depth in DEPTHS:
        models = {}
        for checkpointing in (False, True):
            torch.manual_seed(0)
            config = EncoderConfig(num_layers=depth, position_kind="rotary", dropout=0.0, checkpointing=checkpointing)
            models[checkpointing] = MaskedLanguageModel(config).train()
        saved = {flag: saved_activation_bytes(model, ids, labels) for flag, model in models.items()}
        times = {False: [], True: []}
        for _ in range(REPEATS):  # alternate, so a busy moment of the machine hits both alike
            for flag, model in models.items():
                times[flag].append(training_step(model, ids, labels))
        rows.append(
            {
                "depth": depth,
                "saved_mb_plain": saved[False] / 2**20,
                "saved_mb_checkpointed": saved[True] / 2**20,
                "step_ms_plain": 1000 * statistics.median(times[False]),
                "step_ms_checkpointed": 1000 * statistics.median(times[True]),
            }
        )
    return rows


def speed_rows(ids: torch.Tensor) -> list[list]:
    from apps.mlm import side_by_side as sbs

    rows = []
    for kind in POSITION_KINDS:
        ours = sbs.shipped_encoder(kind)
        reference = to_hf(ours)
        for batch in (1, BATCH):
            inputs = ids[:batch]
            ours_times, reference_times = [], []
            with torch.no_grad():
                for _ in range(REPEATS):
                    started = time.perf_counter()
                    ours_logits = ours(inputs)
                    ours_times.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    reference_logits = reference(input_ids=inputs).logits
                    reference_times.append(time.perf_counter() - started)
            ours_ms, reference_ms = 1000 * statistics.median(ours_times), 1000 * statistics.median(reference_times)
            rows.append(
                [
                    kind,
                    type(reference).__name__,
                    f"{batch} x {LENGTH}",
                    f"{ours_ms:.1f}",
                    f"{reference_ms:.1f}",
                    f"{reference_ms / ours_ms:.2f}x",
                    f"{(ours_logits - reference_logits).abs().max().item():.1e}",
                ]
            )
    return rows


def plot_checkpointing(rows: list[dict]) -> None:
    from shared.ui import pyplot

    plt = pyplot()
    figure, (memory, speed) = plt.subplots(1, 2, figsize=(10, 3.8))
    depths = [row["depth"] for row in rows]
    for suffix, label in (("plain", "plain"), ("checkpointed", "checkpointing")):
        memory.plot(depths, [row[f"saved_mb_{suffix}"] for row in rows], "o-", label=label)
        speed.plot(depths, [row[f"step_ms_{suffix}"] for row in rows], "o-", label=label)
    memory.set(xlabel="blocks", ylabel="MB kept for backward", title=f"activations saved (batch {BATCH} x {LENGTH})")
    speed.set(xlabel="blocks", ylabel="ms per training step", title="step time, one CPU thread")
    for axis in (memory, speed):
        axis.set_xticks(depths)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(PLOT, dpi=100)
    plt.close(figure)


def run() -> dict:
    from apps.mlm import side_by_side as sbs

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4096, (BATCH, LENGTH), generator=generator)
    labels = torch.where(torch.rand(ids.shape, generator=generator) < 0.15, ids, -100)
    checkpointing = checkpointing_rows(ids, labels)
    plot_checkpointing(checkpointing)
    speed = speed_rows(ids)
    report = sbs.report()
    accuracy = {kind: entry["held_out"]["128"]["accuracy"] for kind, entry in report["encoders"].items()}
    ratios = [float(row[5].rstrip("x")) for row in speed]
    deepest = checkpointing[-1]
    return {
        "topic": "mlm",
        "title": "Masked language models (BERT / sinusoidal / RoFormer positions)",
        "checkpointing": checkpointing,
        "summary": [
            {
                "model": "BERT-style encoder, 1.3 M parameters, learned / sinusoidal / rotary positions",
                "reference": "transformers BertForMaskedLM, RoFormerForMaskedLM, fill-mask pipeline",
                "parity": f"max |logit difference| {max(float(row[6]) for row in speed):.1e}; fill-mask top-5 identical",
                "speed": f"{min(ratios):.2f}-{max(ratios):.2f}x transformers' forward speed",
                "quality": "held-out masked-token accuracy "
                + ", ".join(f"{kind} {value:.3f}" for kind, value in accuracy.items())
                + f"; checkpointing keeps {deepest['saved_mb_plain'] / deepest['saved_mb_checkpointed']:.1f}x fewer "
                f"activation bytes at depth {deepest['depth']}",
            }
        ],
        "tables": [
            {
                "title": (
                    f"Gradient checkpointing, batch {BATCH} x {LENGTH}, 128 wide, one thread: activation bytes kept "
                    "for the backward pass and the time of one training step (median of alternating runs)"
                ),
                "columns": [
                    "blocks",
                    "kept, plain",
                    "kept, checkpointing",
                    "ratio",
                    "step, plain",
                    "step, checkpointing",
                    "time cost",
                ],
                "rows": [
                    [
                        row["depth"],
                        f"{row['saved_mb_plain']:.1f} MB",
                        f"{row['saved_mb_checkpointed']:.1f} MB",
                        f"{row['saved_mb_plain'] / row['saved_mb_checkpointed']:.1f}x less",
                        f"{row['step_ms_plain']:.0f} ms",
                        f"{row['step_ms_checkpointed']:.0f} ms",
                        f"+{100 * (row['step_ms_checkpointed'] / row['step_ms_plain'] - 1):.0f}%",
                    ]
                    for row in checkpointing
                ],
            },
            {
                "title": "Forward pass on the shipped encoders, ours vs transformers on the same weights (eager attention)",
                "columns": [
                    "positions",
                    "reference",
                    "batch",
                    "ours ms",
                    "transformers ms",
                    "ours speed",
                    "max |diff|",
                ],
                "rows": speed,
            },
        ],
        "images": [
            {"caption": "Gradient checkpointing: memory for time", "path": "bench/results/mlm_checkpointing.png"},
            {"caption": "Held-out accuracy and perplexity against length", "path": "checkpoints/mlm/extrapolation.png"},
        ],
    }
