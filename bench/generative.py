"""Every generative family of the repository on one table: the same 500 held-out MNIST-5k digits, the same
digit metric (shared/image_metric.py: Fréchet distance of the classifier's features, mean confidence,
digits present), the negative log-likelihood where the family defines one, and the sampling time per image.

Figures are read from the topics' own results (bench/results/<topic>.json), which measure them on these
held-out digits with this metric; each row says where its figures come from. The only figures measured
here are those no topic measures: the digit metric on NICE / RealNVP / Glow samples (1,000 each,
temperature 1.0, the temperature their likelihood is for) and their sampling time.

NLL in bits per dimension = nats per image / (784 ln 2). Two kinds of data carry one: binarised digits
(the VAEs' bounds and the autoregressive models' exact values, on the same fixed binarisation) and
8-bit grey digits with uniform dequantization (the normalizing flows). The two are different data sets:
compare bits/dim within a kind, never across. A VAE's figure is an upper bound (the IWAE-64 bound), the
others are exact, and the diffusion network's is its likelihood through the probability-flow ODE (a
Hutchinson estimate on 100 held-out digits, on the flows' scale). GANs, rectified flow and the VQGAN's prior
(a likelihood over codes, not pixels) have none.

The real digits' FD depends on the number of samples (7.7 for 1,000, 12.1 for 500, 20.8 for 200): read
each FD beside its row's sample count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
FLOW_SAMPLES = 1000
SEED = 0


def table(result: dict, title_start: str) -> dict:
    """The table of a topic's result whose title starts with `title_start`."""
    for candidate in result["tables"]:
        if candidate["title"].startswith(title_start):
            return candidate
    raise KeyError(f"{result['topic']}: no table titled {title_start!r}...")


def rows_by(table_: dict, *keys: str) -> dict[tuple, dict]:
    """Rows of a table as dicts, keyed by the values of the columns `keys`."""
    rows = [dict(zip(table_["columns"], row)) for row in table_["rows"]]
    return {tuple(row[key] for key in keys): row for row in rows}


def load(topic: str) -> dict:
    return json.loads((RESULTS / f"{topic}.json").read_text())


def metric_cells(samples, fd, real_fd, confidence, present) -> dict:
    return {
        "samples": samples,
        "FD": fd,
        "real digits' FD": real_fd,
        "mean confidence": confidence,
        "digits present": present,
    }


def vae_gan_rows() -> list[dict]:
    result = load("vae_gan")
    quality = rows_by(table(result, "Samples scored"), "model")
    likelihood = rows_by(table(result, "Held-out bounds"), "VAE")
    rows = []
    for (name,), row in quality.items():
        bound = likelihood.get((name,))
        rows.append(
            {
                "model": name,
                "family": "GAN" if "GAN" in name else "VAE",
                **metric_cells(
                    row["samples"], row["FD"], row["real digits' FD"], row["mean confidence"], row["digits present"]
                ),
                "NLL bits/dim": f"<= {bound['bits/dim (IWAE)']} (binary, IWAE-64 bound)" if bound else "-",
                "time per image": row["time per image"],
                "source": "bench/results/vae_gan.json",
            }
        )
    return rows


def vqgan_row() -> dict:
    prior = rows_by(table(load("vqgan"), "500 digits from the GPT prior"), "temperature", "top-k")[(1.0, "all")]
    return {
        "model": "VQGAN + GPT prior (temperature 1, all codes)",
        "family": "VQ + autoregressive prior",
        **metric_cells(
            prior["images"], prior["FD"], prior["real digits' FD"], prior["mean confidence"], prior["digits present"]
        ),
        "NLL bits/dim": "- (the prior's likelihood is over codes)",
        "time per image": prior["time per image"],
        "source": "bench/results/vqgan.json",
    }


def normalizing_flow_rows() -> list[dict]:
    """NLL from bench/results/flow.json; the digit metric and timing measured here."""
    from apps.flow import side_by_side as flow_engine
    from apps.flow.model import sample_pixels
    from shared.image_metric import image_quality

    bits = rows_by(table(load("flow"), "Held-out bits/dim"), "flow")
    rows = []
    for label in flow_engine.FLOWS:
        flow = flow_engine.flow_model(label)
        with torch.no_grad():
            started = time.perf_counter()
            images = sample_pixels(flow, FLOW_SAMPLES, 1.0, torch.Generator().manual_seed(SEED))
            seconds = time.perf_counter() - started
        report = image_quality(images).as_row()
        rows.append(
            {
                "model": label,
                "family": "normalizing flow",
                **metric_cells(
                    report["samples"],
                    report["Fréchet distance"],
                    report["real digits' FD"],
                    report["mean confidence"],
                    report["classes present"],
                ),
                "NLL bits/dim": f"{bits[(label,)]['held-out bits/dim']} (8-bit grey, dequantized, exact)",
                "time per image": f"{seconds / FLOW_SAMPLES * 1000:.2f} ms",
                "source": "NLL: bench/results/flow.json; samples and time: measured here (1,000 at temperature 1.0)",
            }
        )
    return rows


def rectified_rows() -> list[dict]:
    quality = rows_by(table(load("flow"), "Rectified-flow sample quality"), "model", "Euler steps")
    rows = []
    for steps in (1, 8):
        row = quality[("1-rectified flow", steps)]
        rows.append(
            {
                "model": f"rectified flow, {steps} Euler step{'s' if steps > 1 else ''}",
                "family": "flow matching",
                **metric_cells(
                    row["samples"], row["FD"], row["real digits' FD"], row["mean confidence"], row["digits present"]
                ),
                "NLL bits/dim": "-",
                "time per image": row["time per image (ours)"],
                "source": "bench/results/flow.json",
            }
        )
    return rows


def diffusion_rows() -> list[dict]:
    """DDIM-20 and DDPM-1000, and the same network read as a VP score sampled by the probability-flow ODE;
    all three share the network's likelihood through that ODE (a property of the model, not the sampler)."""
    result = load("diffusion")
    quality = rows_by(table(result, "Sample quality"), "sampler")
    ode_quality = rows_by(table(result, "The shipped UNet as a VP score"), "sampler")
    ode_bits = table(result, "Held-out bits/dim")["rows"][0][1]
    likelihood = f"{ode_bits} (8-bit grey, dequantized, probability-flow ODE, 100 digits)"
    samplers = {
        "DDIM-20": quality[("DDIM-20",)],
        "DDPM-1000": quality[("DDPM-1000",)],
        "probability-flow ODE (RK45, 68 calls)": ode_quality[("probability-flow ODE (RK45)",)],
    }
    return [
        {
            "model": name,
            "family": "diffusion",
            **metric_cells(
                row["samples"], row["FD"], row["real digits' FD"], row["mean confidence"], row["digits present"]
            ),
            "NLL bits/dim": likelihood,
            "time per image": row["time per image (ours)"],
            "source": "bench/results/diffusion.json",
        }
        for name, row in samplers.items()
    ]


def autoregressive_rows() -> list[dict]:
    result = load("autoregressive")
    quality = rows_by(table(result, "Samples scored"), "samples of")
    likelihood = rows_by(table(result, "Exact held-out NLL"), "model")
    speed = rows_by(table(result, "Sampling time per digit"), "sampler")
    rows = []
    for name in ("NADE", "MADE", "PixelCNN"):
        row = quality[(name,)]
        rows.append(
            {
                "model": name,
                "family": "autoregressive",
                **metric_cells(
                    row["samples"], row["FD"], row["real digits' FD"], row["mean confidence"], row["digits present"]
                ),
                "NLL bits/dim": f"{likelihood[(name,)]['bits/dim']} (binary, exact)",
                "time per image": speed[(name,)]["time per digit"],
                "source": "bench/results/autoregressive.json",
            }
        )
    return rows


COLUMNS = (
    "model",
    "family",
    "samples",
    "FD",
    "real digits' FD",
    "mean confidence",
    "digits present",
    "NLL bits/dim",
    "time per image",
    "source",
)


def generative_table() -> list[list]:
    rows = (
        vae_gan_rows()
        + [vqgan_row()]
        + normalizing_flow_rows()
        + rectified_rows()
        + diffusion_rows()
        + autoregressive_rows()
    )
    return [[row[column] for column in COLUMNS] for row in rows]


def run() -> dict:
    torch.manual_seed(0)
    rows = generative_table()
    best = min(rows, key=lambda row: row[COLUMNS.index("FD")])
    timings = sorted((row[COLUMNS.index("time per image")] for row in rows), key=lambda text: float(text.split()[0]))
    return {
        "topic": "generative",
        "title": "Every generative family on one table",
        "summary": [
            {
                "model": f"{len(rows)} generators from {len({row[1] for row in rows})} families",
                "reference": "the shared digit metric on the same 500 held-out digits; each row's source is named",
                "parity": "-",
                "speed": f"sampling time per image from {timings[0]} to {timings[-1]}",
                "quality": f"lowest FD: {best[0]} ({best[3]} at {best[2]} samples)",
            }
        ],
        "tables": [
            {
                "title": "Every generative model on the same 500 held-out MNIST-5k digits and the same digit metric. "
                "NLL in bits/dim = nats / (784 ln 2); 'binary' rows share one fixed binarisation, 'grey' rows "
                "are 8-bit digits with uniform dequantization: compare within a kind only. The real digits' FD is "
                "what as many real training digits score: read each FD beside its sample count",
                "columns": list(COLUMNS),
                "rows": rows,
            }
        ],
    }
