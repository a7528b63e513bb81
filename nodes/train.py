"""Training MiniSD on the synthetic world, as graph nodes.

SD is trained in two stages, and so is MiniSD:

1. **TrainAutoencoder** teaches the VAE to squeeze a 64×64 picture into an 8×8×4 latent
   and back: reconstruction error, plus a tiny KL term that keeps the latents close to a
   standard normal (so noise in latent space makes sense), plus an optional edge term
   (errors in the image's horizontal/vertical differences) that keeps outlines sharp
   without a perceptual network. It reports PSNR on held-out world images, and measures
   the latents' spread to set ``scaling_factor`` (SD's 0.18215 comes from the same idea).
2. **TrainWorldClip** trains a tiny CLIP on world pictures and captions (contrastive, with
   hard negatives). SD 1.5 did not train its text encoder: it took OpenAI CLIP's text
   tower and froze it. MiniSD does the same with this CLIP's text tower.
3. **TrainDenoiser** freezes the VAE and that text encoder and trains the UNet: take a
   picture's latent, add noise for a random timestep of the DDPM schedule, and ask the
   UNet (reading the caption through cross-attention) to predict that noise (epsilon
   prediction). A fraction of captions is replaced by the empty prompt (caption dropout):
   that teaches the same network the *unconditional* prediction that classifier-free
   guidance subtracts at sampling time. (Without a CLIP it trains a fresh text encoder
   along with the UNet; that text encoder learnt colour words but never told positions
   apart, so MiniSD ignored them: the reason for step 2.)

Two more networks are trained on the same world, so the ControlNet and depth lessons work
offline:

* **TrainControlNet** copies the trained UNet's encoder half into a ControlNet
  (``ControlNetModel.from_unet``) and teaches it to read Canny edge maps of world pictures
  (the very CannyEdges node used at sampling time), with the UNet, VAE and text encoder
  frozen. Its hint encoder shrinks the hint by the VAE's factor (8 for MiniSD).
* **TrainDepthNet** trains a tiny U-Net (nodes/depth.py) from picture to the world's exact
  disparity, normalised per picture (the project's DEPTH convention: larger = nearer);
  EstimateDepth's "minisd" backend loads the folder.

Every trainer is seeded (model init, the data stream, noise, timesteps, dropout: the same
seed gives the same weights), reports its loss as progress, saves a checkpoint in the
node's private work folder every ``checkpoint_every`` steps and when cancelled, and resumes
from it when run again with the same inputs. A run resumed from a checkpoint ends with the
same weights as one that was never interrupted, because every step draws its randomness
from a generator seeded by (seed, step) and its pictures from world batch number `step`.

Outputs: the trained model folder (diffusers layout) is written under the first model
root (``models/<name>`` by default), so ``CheckpointLoader`` / ``LoadVAE`` read it by that
name; the node returns that name. With no model root configured it goes to the output
root and the node returns the absolute path. The loss curve is a PNG in the output root.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Annotated, Any, Callable, NamedTuple

from nodegraph import Cancelled, Doc, NodeInputError, Range, RunContext, atomic_path, node
from nodegraph.lazy import lazy_import
from nodegraph.types import ModelFile, Seed

from . import minisd, world
from .device import pick_device
from .plots import save_line_plot

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

MARKER = "nodegraph_train.json"  # a folder carrying this was written by a trainer here
HOLDOUT = 0x5EED_0F_7E57  # held-out scenes come from this stream, never trained on


# ---- shared machinery -----------------------------------------------------------------------


def step_generator(seed: int, step: int, salt: int = 0) -> "torch.Generator":
    """The randomness of one training step: depends only on (seed, step, salt), so a
    resumed run draws exactly what an uninterrupted run would have drawn."""
    mixed = (int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9 + salt) % 2**63
    return torch.Generator("cpu").manual_seed(mixed)


def world_batch(seed: int, index: int, batch_size: int, device) -> dict:
    """World batch number `index` of the stream for `seed`, images moved to `device`."""
    batch = world.render_batch(world.batch_scenes(seed, index, batch_size), minisd.IMAGE_SIZE)
    batch["image"] = batch["image"].to(device)
    return batch


def holdout_images(seed: int, count: int, device) -> "torch.Tensor":
    return world_batch(HOLDOUT + int(seed), 0, count, device)["image"]


class Checkpoint:
    """The latest training state in ``work_dir/checkpoint.pt`` (written atomically; loaded
    with ``weights_only=True``, so it holds only tensors, numbers and lists)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / "checkpoint.pt"

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, step: int, losses: list[float], modules: dict[str, Any], optimizer, extra: dict | None = None) -> None:
        state = {
            "step": int(step),
            "losses": [float(x) for x in losses],
            "modules": {name: m.state_dict() for name, m in modules.items()},
            "optimizer": optimizer.state_dict(),
            "extra": extra or {},
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)


def plot_losses(losses: list[float], path: Path, title: str) -> Path:
    """The loss curve (raw and smoothed, log scale) as a PNG, written atomically."""
    steps = list(range(1, len(losses) + 1))
    lines = [("loss", steps, losses, {"color": "#9ab", "linewidth": 0.8})] if losses else []
    window = max(1, len(losses) // 50)
    if window > 1:
        smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1]) for i in range(len(losses))]
        lines.append((f"mean of {window}", steps, smooth, {"color": "#c33", "linewidth": 1.4}))
    return save_line_plot(path, lines, xlabel="step", ylabel="loss", title=title, log_y=bool(losses) and min(losses) > 0)


def _check_name(name: str, input_name: str = "name") -> None:
    if not name or name.startswith((".", "/")) or ".." in Path(name).parts or "\\" in name:
        raise NodeInputError(input_name, "a plain folder name is needed", expected="e.g. minisd", got=repr(name))


def publish_target(ctx: RunContext, name: str) -> tuple[Path, str]:
    """Where a trained folder goes, and the STRING the node returns for it."""
    _check_name(name)
    if ctx.roots.models:
        base = Path(ctx.roots.models[0])
        return base / name, name
    path = ctx.output_path(name, "name")
    return path, str(path)


def publish(ctx: RunContext, name: str, fill: Callable[[Path], None], facts: dict) -> str:
    """Write a model folder atomically under the model root; refuse to replace a folder
    that a trainer did not write."""
    target, shown = publish_target(ctx, name)
    if target.exists() and not (target / MARKER).exists():
        raise NodeInputError("name", f"{target} exists and was not written by a trainer; pick another name", got=name)

    def fill_all(staging: Path) -> None:
        fill(staging)
        (staging / MARKER).write_text(json.dumps(facts, indent=2) + "\n")

    minisd._atomic_folder(target, fill_all)
    ctx.wrote(target)
    return shown


def resolve_model(ctx: RunContext, name: str, input_name: str) -> Path:
    """A trained folder named by an earlier trainer: under a model root, or an absolute path
    under the output root (when no model root is configured)."""
    path = Path(name)
    if path.is_absolute() and ctx.roots.check_write(name) is None and path.exists():
        return path
    return ctx.input_path(name, input_name, root="model")


def _lr_at(step: int, base: float, warmup: int, steps: int = 0, decay_fraction: float = 0.0) -> float:
    """Linear warm-up, then constant; over the last `decay_fraction` of the steps it eases
    (half a cosine) down to a tenth. The constant part does not depend on `steps`, so a run
    made longer resumes exactly where the shorter one stopped, as long as its decay had not
    begun."""
    rate = base * min(1.0, (step + 1) / max(1, warmup))
    decay_start = steps - int(round(steps * decay_fraction))
    if decay_fraction > 0 and step >= decay_start:
        progress = (step - decay_start) / max(1, steps - decay_start)
        rate *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    return rate


def run_training(
    ctx: RunContext,
    *,
    steps: int,
    checkpoint_every: int,
    modules: dict[str, Any],
    optimizer,
    learning_rate: float,
    warmup: int,
    step_fn: Callable[[int], float],
    preview_fn: Callable[[], Any] | None = None,
    label: str = "",
    decay_fraction: float = 0.0,
) -> list[float]:
    """The loop every trainer shares: resume, step, report, checkpoint, cancel safely."""
    checkpoint = Checkpoint(ctx.work_dir)
    state = checkpoint.load()
    start, losses = 0, []
    if state is not None and state["step"] <= steps:
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        optimizer.load_state_dict(state["optimizer"])
        start, losses = state["step"], list(state["losses"])
        ctx.progress(start, steps, None, f"{label}resumed at step {start}")
    saved = start
    try:
        for step in range(start, steps):
            ctx.check_cancelled()
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, learning_rate, warmup, steps, decay_fraction)
            loss = step_fn(step)
            losses.append(loss)
            done = step + 1
            if done % checkpoint_every == 0 or done == steps:
                checkpoint.save(done, losses, modules, optimizer)
                saved = done
                plot_losses(losses, ctx.work_dir / "loss.png", f"{label}loss")
                preview = preview_fn() if preview_fn is not None else None
                ctx.progress(done, steps, preview, f"{label}step {done}/{steps} loss {loss:.5f}")
            else:
                ctx.progress(done, steps, None, f"{label}step {done}/{steps} loss {loss:.5f}")
    except Cancelled:
        if len(losses) != saved:
            checkpoint.save(len(losses), losses, modules, optimizer)  # keep every finished step
        raise
    return losses


def adamw(params, learning_rate: float, weight_decay: float):
    """AdamW; the fused kernel where torch has one (much less per-step overhead on CPU)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)


def _seeded_init(seed: int, build: Callable[[], Any]) -> Any:
    """Build networks under a private seeded RNG (the global one is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def psnr(a: "torch.Tensor", b: "torch.Tensor") -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1] (averaged MSE over the batch); the
    same measure lessons use (ImageDistance), after clamping reconstructions into range."""
    from .check import image_distance_value

    return image_distance_value(a.clamp(0, 1), b.clamp(0, 1), "psnr")


def image_gradients(x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


# ---- the autoencoder ------------------------------------------------------------------------


def autoencoder_loss(vae, images: "torch.Tensor", generator, kl_weight: float, edge_weight: float, pixel_weight=None) -> "torch.Tensor":
    """Reconstruction loss (see reconstruction_loss) + kl_weight·KL of the latent distribution."""
    x = images * 2 - 1
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=generator)
    loss = reconstruction_loss(vae.decode(z).sample, x, edge_weight, pixel_weight)
    if kl_weight > 0:
        loss = loss + kl_weight * posterior.kl().mean() / x[0].numel()
    return loss


def reconstruction_loss(recon, target, edge_weight: float, pixel_weight=None) -> "torch.Tensor":
    """MSE (in the VAE's [-1, 1] range; with `pixel_weight`, a weighted mean) + edge_weight·L1
    of the difference between image gradients."""
    if pixel_weight is None:
        loss = F.mse_loss(recon, target)
    else:
        loss = (pixel_weight * (recon - target) ** 2).mean() / pixel_weight.mean()
    if edge_weight > 0:
        (rx, ry), (tx, ty) = image_gradients(recon), image_gradients(target)
        loss = loss + edge_weight * (F.l1_loss(rx, tx) + F.l1_loss(ry, ty))
    return loss


def object_weights(masks: "torch.Tensor", object_weight: float) -> "torch.Tensor":
    """B×1×H×W pixel weights: 1 on the background; on every object and a 2-pixel ring around
    it (where its outline is drawn) 1 + object_weight × (a medium object's area / its own
    area, kept within 1/4..4), so a small star counts as much as a large circle."""
    area = masks.flatten(2).sum(-1).clamp(min=1.0)
    typical = math.pi * (world.SIZES["medium"] * masks.shape[-1]) ** 2
    per_object = (typical / area).clamp(0.25, 4.0)[..., None, None] * (masks > 0)
    ring = F.max_pool2d(per_object, 5, stride=1, padding=2).amax(1, keepdim=True)
    return 1 + object_weight * ring


def reconstruct(vae, images: "torch.Tensor") -> "torch.Tensor":
    """Encode (posterior mean) and decode images in [0, 1]; returns [0, 1]."""
    with torch.no_grad():
        z = vae.encode(images * 2 - 1).latent_dist.mode()
        return ((vae.decode(z).sample + 1) / 2).clamp(0, 1)


def latent_std(vae, images: "torch.Tensor") -> float:
    with torch.no_grad():
        return float(vae.encode(images * 2 - 1).latent_dist.mode().std())


class AutoencoderResult(NamedTuple):
    vae_path: str
    loss_plot: str
    psnr: float


@node(category="train", name="TrainAutoencoder", persist=True)
def train_autoencoder(
    ctx: RunContext,
    seed: Annotated[Seed, Doc("model init and the world data stream")] = 0,
    steps: Annotated[int, Range(1, 1_000_000), Doc("optimizer steps")] = 4000,
    batch_size: Annotated[int, Range(1, 256)] = 16,
    learning_rate: Annotated[float, Range(1e-6, 1e-1)] = 1e-3,
    kl_weight: Annotated[float, Range(0.0, 1.0), Doc("weight of the KL term (per latent value): SD uses ~1e-6")] = 1e-6,
    edge_weight: Annotated[float, Range(0.0, 10.0), Doc("weight of the edge (image-gradient) loss; 0 = off")] = 0.5,
    object_weight: Annotated[float, Range(0.0, 100.0), Doc("extra weight of the pixels on and around objects, as in TuneVaeDecoder; 0 = plain MSE")] = 0.0,
    lr_decay: Annotated[float, Range(0.0, 1.0), Doc("share of the last steps over which the learning rate eases down to a tenth; 0 = constant")] = 0.0,
    checkpoint_every: Annotated[int, Range(1, 100_000)] = 100,
    name: Annotated[str, Doc("folder written under the first model root")] = "minisd-vae",
) -> AutoencoderResult:
    """Train MiniSD's VAE (AutoencoderKL, 64×64×3 → 8×8×4) on world pictures. Reports
    PSNR on held-out pictures; sets scaling_factor so the latents have unit spread."""
    _check_name(name)
    device = pick_device()
    vae = _seeded_init(seed, minisd.build_vae).to(device).train()
    optimizer = adamw(vae.parameters(), learning_rate, weight_decay=0.0)
    held_out = holdout_images(seed, 16, device)

    def step_fn(step: int) -> float:
        batch = world_batch(seed, step, batch_size, device)
        weights = object_weights(batch["masks"].to(device), object_weight) if object_weight > 0 else None
        loss = autoencoder_loss(vae, batch["image"], step_generator(seed, step), kl_weight, edge_weight, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def preview():
        vae.eval()
        out = torch.cat([held_out[:4], reconstruct(vae, held_out[:4])]).cpu()
        vae.train()
        return out

    losses = run_training(
        ctx, steps=steps, checkpoint_every=checkpoint_every, modules={"vae": vae}, optimizer=optimizer,
        learning_rate=learning_rate, warmup=min(100, steps // 10 + 1), step_fn=step_fn, preview_fn=preview, label="VAE ",
        decay_fraction=lr_decay,
    )
    vae.eval()
    score = psnr(reconstruct(vae, held_out), held_out)
    spread, kept = latent_std(vae, held_out), shapes_kept(vae, seed, 96, device)
    vae.register_to_config(scaling_factor=round(1.0 / max(spread, 1e-6), 5))
    facts = {"trainer": "TrainAutoencoder", "seed": seed, "steps": steps, "batch_size": batch_size, "object_weight": object_weight,
             "lr_decay": lr_decay, "psnr_db": round(score, 3), "shapes_kept": round(kept, 4), "latent_std": spread, "final_loss": losses[-1] if losses else None}
    path = publish(ctx, name, lambda d: minisd.save_part(vae, d), facts)
    plot = plot_losses(losses, ctx.output_path(f"train/{name}_loss.png"), f"TrainAutoencoder: PSNR {score:.2f} dB, shapes kept {kept:.0%}")
    ctx.wrote(plot)
    return AutoencoderResult(path, str(plot), round(score, 4))


TUNE_STREAM = 7_777  # the decoder tuner's world pictures: a stream the autoencoder never drew


def shapes_kept(vae, seed: int, count: int, device) -> float:
    """Share of `count` held-out one-object pictures whose colour and shape the world's
    evaluator still reads correctly after an encode-decode round trip."""
    scenes = world.batch_scenes(HOLDOUT + int(seed), 1, count, n_objects=1)
    rebuilt = reconstruct(vae, world.render_batch(scenes, minisd.IMAGE_SIZE)["image"].to(device)).cpu()
    scores = [world.evaluate(rebuilt[i : i + 1], world.scene_target(scene))["accuracy"]["color_and_shape"] for i, scene in enumerate(scenes)]
    return sum(scores) / len(scores)


class DecoderResult(NamedTuple):
    vae_path: str
    loss_plot: str
    psnr: float
    shapes_kept: float


@node(category="train", name="TuneVaeDecoder", persist=True)
def tune_vae_decoder(
    ctx: RunContext,
    vae: Annotated[ModelFile, Doc("the VAE folder to improve (TrainAutoencoder's vae_path)")],
    seed: Annotated[Seed, Doc("the world data stream and latent samples")] = 0,
    steps: Annotated[int, Range(1, 1_000_000)] = 1000,
    batch_size: Annotated[int, Range(1, 256)] = 32,
    learning_rate: Annotated[float, Range(1e-6, 1e-1)] = 3e-4,
    object_weight: Annotated[float, Range(0.0, 100.0), Doc("extra weight of the pixels on and around objects: few pixels, but all of the picture's meaning; 0 = plain MSE")] = 8.0,
    edge_weight: Annotated[float, Range(0.0, 10.0), Doc("weight of the edge (image-gradient) loss; 0 = off")] = 0.5,
    checkpoint_every: Annotated[int, Range(1, 100_000)] = 100,
    name: Annotated[str, Doc("folder written under the first model root")] = "minisd-vae-ft",
) -> DecoderResult:
    """Fine-tune only the VAE's decoder; the encoder stays frozen. The latent space is then
    exactly the same, so any UNet trained on it keeps working, but the pictures come out
    sharper: Stable Diffusion's improved VAE (sd-vae-ft-mse) was made this way. The loss
    weights the pixels on and around objects more, so small shapes stop melting into
    blobs. The learning rate eases down over the second half. Reports PSNR and the share of
    held-out shapes that survive a round trip."""
    _check_name(name)
    device = pick_device()
    model = load_vae_folder(resolve_model(ctx, vae, "vae"), device)
    trained = list(model.decoder.parameters()) + list(model.post_quant_conv.parameters())
    for parameter in trained:
        parameter.requires_grad_(True)
    optimizer = adamw(trained, learning_rate, weight_decay=0.0)
    held_out = holdout_images(seed, 16, device)

    def step_fn(step: int) -> float:
        batch = world_batch(seed + TUNE_STREAM, step, batch_size, device)
        x = batch["image"] * 2 - 1
        with torch.no_grad():
            z = model.encode(x).latent_dist.sample(generator=step_generator(seed, step))
        weights = object_weights(batch["masks"].to(device), object_weight)
        loss = reconstruction_loss(model.decode(z).sample, x, edge_weight, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def preview():
        return torch.cat([held_out[:4], reconstruct(model, held_out[:4])]).cpu()

    losses = run_training(
        ctx, steps=steps, checkpoint_every=checkpoint_every, modules={"decoder": model.decoder, "post_quant_conv": model.post_quant_conv},
        optimizer=optimizer, learning_rate=learning_rate, warmup=min(100, steps // 10 + 1), step_fn=step_fn,
        preview_fn=preview, label="VAE decoder ", decay_fraction=0.5,
    )
    model.requires_grad_(False)
    score, kept = psnr(reconstruct(model, held_out), held_out), shapes_kept(model, seed, 96, device)
    facts = {"trainer": "TuneVaeDecoder", "base": vae, "seed": seed, "steps": steps, "batch_size": batch_size,
             "object_weight": object_weight, "psnr_db": round(score, 3), "shapes_kept": round(kept, 4),
             "final_loss": losses[-1] if losses else None}
    path = publish(ctx, name, lambda d: minisd.save_part(model, d), facts)
    plot = plot_losses(losses, ctx.output_path(f"train/{name}_loss.png"), f"TuneVaeDecoder: PSNR {score:.2f} dB, shapes kept {kept:.0%}")
    ctx.wrote(plot)
    return DecoderResult(path, str(plot), round(score, 4), round(kept, 4))


# ---- text encoder + UNet ----------------------------------------------------------------------


def encode_latents(vae, images: "torch.Tensor", generator) -> "torch.Tensor":
    """VAE latents of images in [0, 1], sampled from the encoder's distribution and scaled
    the way the UNet sees them (SD's ``scaling_factor``)."""
    with torch.no_grad():
        return vae.encode(images * 2 - 1).latent_dist.sample(generator=generator) * vae.config.scaling_factor


def denoiser_loss(unet, text_encoder, tokenizer, scheduler, latents, captions, generator, caption_dropout: float):
    """Epsilon-prediction loss on (scaled) VAE latents, with caption dropout for CFG."""
    device = latents.device
    b = latents.shape[0]
    drop = torch.rand(b, generator=generator) < caption_dropout
    prompts = ["" if d else c for d, c in zip(drop.tolist(), captions)]
    hidden = minisd.encode_prompts(tokenizer, text_encoder, prompts)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator).to(device)
    noisy = scheduler.add_noise(latents, noise, t)
    prediction = unet(noisy, t, encoder_hidden_states=hidden).sample
    return F.mse_loss(prediction, noise)


class EncodedWorld:
    """A fixed set of world pictures encoded once by the frozen VAE: each picture's latent
    mean and spread, and its caption. Encoding is most of a denoiser step's cost and the
    VAE never changes while the UNet learns, so it is done once (and kept in the node's
    work folder, so a resumed run does not redo it); every step then draws a fresh latent
    sample of a random subset, as SD's own training on cached latents does."""

    def __init__(self, mean: "torch.Tensor", std: "torch.Tensor", captions: list[str], scaling_factor: float) -> None:
        self.mean, self.std, self.captions, self.scaling_factor = mean, std, captions, scaling_factor

    @classmethod
    def build(cls, ctx: RunContext, vae, seed: int, count: int, device) -> "EncodedWorld":
        """Encode `count` pictures of the world stream for `seed` once, kept in the work folder."""
        path = ctx.work_dir / f"encoded_world_{count}.pt"
        if path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return cls(saved["mean"], saved["std"], list(saved["captions"]), float(saved["scaling_factor"]))
        encoded = cls.encode(vae, seed, count, device, lambda done: ctx.progress(done, count, None, f"encoding world pictures {done}/{count}"))
        with atomic_path(path) as tmp:
            torch.save({"mean": encoded.mean, "std": encoded.std, "captions": encoded.captions,
                        "scaling_factor": encoded.scaling_factor}, tmp)
        return encoded

    @classmethod
    def encode(cls, vae, seed: int, count: int, device, progress: Callable[[int], None] = lambda done: None,
               chunk: int = 64) -> "EncodedWorld":
        means, stds, captions = [], [], []
        for index in range(-(-count // chunk)):
            progress(index * chunk)
            batch = world_batch(seed, index, chunk, device)
            with torch.no_grad():
                dist = vae.encode(batch["image"] * 2 - 1).latent_dist
            means.append(dist.mean.cpu())
            stds.append(dist.std.cpu())
            captions += list(batch["caption"])
        return cls(torch.cat(means)[:count], torch.cat(stds)[:count], captions[:count], float(vae.config.scaling_factor))

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, size: int, generator, device) -> tuple["torch.Tensor", list[str]]:
        index = torch.randint(0, len(self), (size,), generator=generator)
        noise = torch.randn(self.mean[index].shape, generator=generator)
        latents = (self.mean[index] + self.std[index] * noise) * self.scaling_factor
        return latents.to(device), [self.captions[i] for i in index.tolist()]


def load_vae_folder(folder: Path, device):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(str(folder), local_files_only=True).to(device).eval().requires_grad_(False)


class DenoiserResult(NamedTuple):
    model_path: str
    loss_plot: str
    final_loss: float


@node(category="train", name="TrainDenoiser", persist=True)
def train_denoiser(
    ctx: RunContext,
    vae: Annotated[ModelFile, Doc("the VAE folder TrainAutoencoder or TuneVaeDecoder wrote (its vae_path output)")],
    clip: Annotated[ModelFile, Doc("the world CLIP folder TrainWorldClip wrote: its text tower becomes the text encoder, frozen (as SD 1.5 freezes CLIP's); empty = train a fresh text encoder along with the UNet")] = "",
    seed: Annotated[Seed, Doc("model init, data, noise, timesteps, caption dropout")] = 0,
    steps: Annotated[int, Range(1, 1_000_000)] = 6000,
    batch_size: Annotated[int, Range(1, 512)] = 64,
    learning_rate: Annotated[float, Range(1e-6, 1e-1)] = 5e-4,
    caption_dropout: Annotated[float, Range(0.0, 1.0), Doc("share of captions replaced by the empty prompt (teaches the unconditional prediction CFG needs)")] = 0.1,
    dataset_size: Annotated[int, Range(1, 1_000_000), Doc("distinct world pictures, encoded once by the VAE before training starts")] = 32768,
    lr_decay: Annotated[float, Range(0.0, 1.0), Doc("share of the last steps over which the learning rate eases down to a tenth (settles the weights, as SD's EMA does); 0 = constant")] = 0.5,
    checkpoint_every: Annotated[int, Range(1, 100_000)] = 100,
    name: Annotated[str, Doc("pipeline folder written under the first model root")] = "minisd",
) -> DenoiserResult:
    """Train MiniSD's UNet on VAE latents of world pictures (epsilon prediction, DDPM noise
    schedule, caption dropout), reading captions through the world CLIP's frozen text tower
    (or a text encoder trained along with it when `clip` is empty), then write a complete
    diffusers pipeline folder that CheckpointLoader and StableDiffusionPipeline load."""
    _check_name(name)
    device = pick_device()
    vae_model = load_vae_folder(resolve_model(ctx, vae, "vae"), device)
    tokenizer = minisd.build_tokenizer()

    def build():
        return minisd.build_text_encoder(tokenizer), minisd.build_unet()

    text_encoder, unet = _seeded_init(seed, build)
    unet = unet.to(device).train()
    if clip:
        from .clip_space import read_folder_model

        clip_model, _ = read_folder_model(resolve_model(ctx, clip, "clip"))
        text_encoder = minisd.text_encoder_from_clip(clip_model, tokenizer).to(device).eval().requires_grad_(False)
        params = list(unet.parameters())
    else:
        text_encoder = text_encoder.to(device).train()
        params = list(unet.parameters()) + list(text_encoder.parameters())
    scheduler = minisd.build_train_scheduler()
    optimizer = adamw(params, learning_rate, weight_decay=1e-2)
    data = EncodedWorld.build(ctx, vae_model, seed, dataset_size, device)

    def step_fn(step: int) -> float:
        generator = step_generator(seed, step)
        latents, captions = data.batch(batch_size, generator, device)
        loss = denoiser_loss(unet, text_encoder, tokenizer, scheduler, latents, captions, generator, caption_dropout)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return float(loss.detach())

    losses = run_training(
        ctx, steps=steps, checkpoint_every=checkpoint_every, modules={"unet": unet, "text_encoder": text_encoder},
        optimizer=optimizer, learning_rate=learning_rate, warmup=min(200, steps // 10 + 1), step_fn=step_fn, label="UNet ",
        decay_fraction=lr_decay,
    )
    unet.eval()
    text_encoder.eval()
    facts = {"trainer": "TrainDenoiser", "seed": seed, "steps": steps, "batch_size": batch_size,
             "caption_dropout": caption_dropout, "lr_decay": lr_decay, "text_encoder": f"text tower of {clip}" if clip else "trained with the UNet", "final_loss": losses[-1] if losses else None}

    def fill(folder: Path) -> None:
        minisd.write_pipeline(folder / "pipeline", unet, vae_model, text_encoder, tokenizer, extra=facts)
        for child in (folder / "pipeline").iterdir():
            shutil.move(str(child), folder / child.name)
        (folder / "pipeline").rmdir()

    path = publish(ctx, name, fill, facts)
    recent = losses[-max(1, min(50, len(losses))) :]
    final = sum(recent) / len(recent)
    plot = plot_losses(losses, ctx.output_path(f"train/{name}_loss.png"), f"TrainDenoiser: final loss {final:.4f}")
    ctx.wrote(plot)
    return DenoiserResult(path, str(plot), round(final, 6))


# ---- ControlNet on edge maps ------------------------------------------------------------------


def edge_hints(images: "torch.Tensor", low_threshold: float = 0.1, high_threshold: float = 0.2) -> "torch.Tensor":
    """The Canny hint of world pictures: the very CannyEdges node a graph uses at sampling
    time, so the ControlNet is trained on exactly the hints it will be given."""
    from .controlnet import canny_edges

    return canny_edges(images, low_threshold, high_threshold)


def controlnet_loss(vae, unet, controlnet, text_encoder, tokenizer, scheduler, images, hints, captions, generator,
                    caption_dropout: float):
    """Epsilon-prediction loss of the frozen UNet helped by the ControlNet: the ControlNet
    reads the noisy latent, the prompt and the hint, and its residuals are added to the
    UNet's skip connections. Only the ControlNet learns; the UNet's weights stay as they
    are (the gradient flows through the UNet to the residuals)."""
    device = images.device
    latents = encode_latents(vae, images, generator)
    b = latents.shape[0]
    drop = torch.rand(b, generator=generator) < caption_dropout
    prompts = ["" if d else c for d, c in zip(drop.tolist(), captions)]
    with torch.no_grad():
        hidden = minisd.encode_prompts(tokenizer, text_encoder, prompts)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator).to(device)
    noisy = scheduler.add_noise(latents, noise, t)
    down, mid = controlnet(noisy, t, encoder_hidden_states=hidden, controlnet_cond=hints, return_dict=False)
    prediction = unet(noisy, t, encoder_hidden_states=hidden, down_block_additional_residuals=down,
                      mid_block_additional_residual=mid).sample
    return F.mse_loss(prediction, noise)


def load_frozen_pipeline_parts(folder: Path, device) -> dict:
    """UNet, VAE, text encoder, tokenizer and the DDPM training schedule of a MiniSD (or any
    SD) diffusers folder, all frozen: what the ControlNet is trained against."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not (folder / part).is_dir():
            raise NodeInputError("model", f"{folder} has no {part}/ folder: not a diffusers pipeline folder",
                                 expected="the folder TrainDenoiser wrote (its model_path output)", got=str(folder))
    frozen = lambda m: m.to(device).eval().requires_grad_(False)  # noqa: E731
    return {
        "unet": frozen(UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet", local_files_only=True)),
        "vae": frozen(AutoencoderKL.from_pretrained(str(folder), subfolder="vae", local_files_only=True)),
        "text_encoder": frozen(CLIPTextModel.from_pretrained(str(folder), subfolder="text_encoder", local_files_only=True)),
        "tokenizer": CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer", local_files_only=True),
        "scheduler": DDPMScheduler.from_pretrained(str(folder), subfolder="scheduler", local_files_only=True),
    }


def vae_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def controlnet_embedding_channels(factor: int) -> tuple[int, ...]:
    """The hint encoder's widths: one stride-2 step per entry after the first, so
    len = log2(factor) + 1 makes it shrink the hint exactly as much as the VAE shrinks the
    picture (MiniSD: 8×, so 4 entries: 64×64 hint → 8×8 features on the 8×8 latent)."""
    levels = int(round(math.log2(factor)))
    if 2**levels != factor:
        raise NodeInputError("model", "the VAE's downscale factor is not a power of two", got=str(factor))
    return tuple(min(16 * 2**i, 64) for i in range(levels + 1))


def controlnet_holdout_losses(parts: dict, controlnet, seed: int, count: int, thresholds: tuple[float, float]) -> tuple[float, float]:
    """Denoising loss on held-out pictures (fixed noise and timesteps, full prompts) without
    and with the ControlNet: how much the hint helps the UNet guess the noise."""
    device = next(parts["unet"].parameters()).device
    batch = world_batch(HOLDOUT + int(seed), 0, count, device)
    hints = edge_hints(batch["image"], *thresholds)
    common = (parts["text_encoder"], parts["tokenizer"], parts["scheduler"])
    with torch.no_grad():  # both draw the same latents, noise and timesteps from equal generators
        generator = step_generator(seed, 0, salt=7)
        latents = encode_latents(parts["vae"], batch["image"], generator)
        off = denoiser_loss(parts["unet"], *common, latents, batch["caption"], generator, 0.0)
        on = controlnet_loss(parts["vae"], parts["unet"], controlnet, *common, batch["image"], hints, batch["caption"],
                             step_generator(seed, 0, salt=7), 0.0)
    return float(off), float(on)


class ControlNetResult(NamedTuple):
    controlnet_path: str
    loss_plot: str
    final_loss: float


@node(category="train", name="TrainControlNet", persist=True)
def train_controlnet(
    ctx: RunContext,
    model: Annotated[ModelFile, Doc("the MiniSD pipeline folder TrainDenoiser wrote (its model_path output); stays frozen")] = "minisd",
    seed: Annotated[Seed, Doc("hint-encoder init, data, noise, timesteps, caption dropout")] = 0,
    steps: Annotated[int, Range(1, 1_000_000)] = 3000,
    batch_size: Annotated[int, Range(1, 512)] = 32,
    learning_rate: Annotated[float, Range(1e-6, 1e-1)] = 3e-4,
    caption_dropout: Annotated[float, Range(0.0, 1.0), Doc("share of prompts replaced by the empty prompt, so the ControlNet learns to read the hint alone (the ControlNet paper uses 0.5)")] = 0.5,
    low_threshold: Annotated[float, Range(0.0, 1.0, step=0.01), Doc("Canny low threshold (as CannyEdges)")] = 0.1,
    high_threshold: Annotated[float, Range(0.0, 1.0, step=0.01), Doc("Canny high threshold (as CannyEdges)")] = 0.2,
    checkpoint_every: Annotated[int, Range(1, 100_000)] = 100,
    name: Annotated[str, Doc("ControlNet folder written under the first model root")] = "minisd-controlnet-canny",
) -> ControlNetResult:
    """Train a ControlNet that steers MiniSD with Canny edge maps of world pictures.

    The ControlNet starts as a copy of the trained UNet's encoder half
    (``ControlNetModel.from_unet``), plus a small hint encoder that shrinks the 64×64 edge
    map by the VAE's factor (8) to the latent's 8×8, and zero-initialised output layers, so
    at step 0 it changes nothing. The UNet, VAE and text encoder stay frozen; the loss is
    the usual noise-prediction error of the UNet with the ControlNet's residuals added.
    Writes a diffusers ControlNet folder that LoadControlNet reads."""
    from diffusers import ControlNetModel

    _check_name(name)
    if low_threshold > high_threshold:
        raise NodeInputError("high_threshold", "high_threshold is below low_threshold", expected=f">= {low_threshold}", got=str(high_threshold))
    device = pick_device()
    base = resolve_model(ctx, model, "model")
    parts = load_frozen_pipeline_parts(base, device)
    factor = vae_factor(parts["vae"])
    controlnet = _seeded_init(seed, lambda: ControlNetModel.from_unet(
        parts["unet"], conditioning_embedding_out_channels=controlnet_embedding_channels(factor)))
    controlnet = controlnet.to(device).train().requires_grad_(True)
    params = list(controlnet.parameters())
    optimizer = adamw(params, learning_rate, weight_decay=1e-2)
    thresholds = (low_threshold, high_threshold)

    def step_fn(step: int) -> float:
        batch = world_batch(seed, step, batch_size, device)
        hints = edge_hints(batch["image"], *thresholds)
        loss = controlnet_loss(parts["vae"], parts["unet"], controlnet, parts["text_encoder"], parts["tokenizer"],
                               parts["scheduler"], batch["image"], hints, batch["caption"], step_generator(seed, step),
                               caption_dropout)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return float(loss.detach())

    losses = run_training(
        ctx, steps=steps, checkpoint_every=checkpoint_every, modules={"controlnet": controlnet}, optimizer=optimizer,
        learning_rate=learning_rate, warmup=min(100, steps // 10 + 1), step_fn=step_fn, label="ControlNet ",
    )
    controlnet.eval()
    without, with_hint = controlnet_holdout_losses(parts, controlnet, seed, 16, thresholds)
    recent = losses[-max(1, min(50, len(losses))) :]
    final = sum(recent) / len(recent)
    facts = {"trainer": "TrainControlNet", "base_model": model, "seed": seed, "steps": steps, "batch_size": batch_size,
             "caption_dropout": caption_dropout, "hint": "canny", "low_threshold": low_threshold,
             "high_threshold": high_threshold, "downscale": factor, "final_loss": final,
             "holdout_loss_without_controlnet": without, "holdout_loss_with_controlnet": with_hint}
    path = publish(ctx, name, lambda d: minisd.save_part(controlnet, d), facts)
    plot = plot_losses(losses, ctx.output_path(f"train/{name}_loss.png"),
                       f"TrainControlNet: held-out loss {without:.4f} → {with_hint:.4f} with the hint")
    ctx.wrote(plot)
    return ControlNetResult(path, str(plot), round(final, 6))


# ---- depth net -----------------------------------------------------------------------------------


def depth_targets(depth: "torch.Tensor") -> "torch.Tensor":
    """The world's exact disparity (larger = nearer), normalised per picture to [0, 1]:
    what EstimateDepth(normalize="per_image") outputs, so the net learns the DEPTH convention."""
    from .depth import normalise_per_image

    return normalise_per_image(depth)


def depth_loss(net, images: "torch.Tensor", depth: "torch.Tensor", edge_weight: float = 0.0) -> "torch.Tensor":
    """L1 between the predicted and the true normalised disparity, plus edge_weight·L1 of
    the difference between their gradients (sharp object boundaries)."""
    target = depth_targets(depth)
    predicted = net(images)
    loss = F.l1_loss(predicted, target)
    if edge_weight > 0:
        (px, py), (tx, ty) = image_gradients(predicted), image_gradients(target)
        loss = loss + edge_weight * (F.l1_loss(px, tx) + F.l1_loss(py, ty))
    return loss


def depth_error(net, seed: int, count: int, device) -> float:
    """Mean absolute error of the normalised disparity on held-out world pictures (0 = exact,
    1 = everything wrong)."""
    batch = world_batch(HOLDOUT + int(seed), 0, count, device)
    with torch.no_grad():
        return float(F.l1_loss(net(batch["image"]), depth_targets(batch["depth"].to(device))))


class DepthNetResult(NamedTuple):
    depth_net_path: str
    loss_plot: str
    holdout_error: float


@node(category="train", name="TrainDepthNet", persist=True)
def train_depth_net(
    ctx: RunContext,
    seed: Annotated[Seed, Doc("model init and the world data stream")] = 0,
    steps: Annotated[int, Range(1, 1_000_000)] = 3000,
    batch_size: Annotated[int, Range(1, 256)] = 32,
    learning_rate: Annotated[float, Range(1e-6, 1e-1)] = 2e-3,
    edge_weight: Annotated[float, Range(0.0, 10.0), Doc("weight of the depth-gradient loss (sharp boundaries); 0 = off")] = 0.5,
    checkpoint_every: Annotated[int, Range(1, 100_000)] = 100,
    name: Annotated[str, Doc("folder written under the first model root (EstimateDepth's minisd backend reads minisd-depth)")] = "minisd-depth",
) -> DepthNetResult:
    """Train the MiniSD depth net (a tiny U-Net, picture → depth) on world pictures and
    their exact depth: per-pixel disparity, normalised per picture to [0, 1] (1 = the
    nearest object, 0 = the background), L1 loss. Reports the mean error on held-out
    pictures. Writes config.json + model.safetensors that EstimateDepth(backend="minisd") loads."""
    from . import depth as depth_pack

    _check_name(name)
    device = pick_device()
    net = _seeded_init(seed, depth_pack.build_depth_net).to(device).train()
    optimizer = adamw(net.parameters(), learning_rate, weight_decay=1e-4)
    held_out = world_batch(HOLDOUT + int(seed), 0, 4, device)

    def step_fn(step: int) -> float:
        batch = world_batch(seed, step, batch_size, device)
        loss = depth_loss(net, batch["image"], batch["depth"].to(device), edge_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def preview():
        net.eval()
        with torch.no_grad():
            predicted = net(held_out["image"])
        net.train()
        return torch.cat([held_out["image"], predicted.repeat(1, 3, 1, 1)]).cpu()

    losses = run_training(
        ctx, steps=steps, checkpoint_every=checkpoint_every, modules={"depth_net": net}, optimizer=optimizer,
        learning_rate=learning_rate, warmup=min(100, steps // 10 + 1), step_fn=step_fn, preview_fn=preview, label="depth ",
    )
    net.eval()
    error = depth_error(net, seed, 32, device)
    facts = {"trainer": "TrainDepthNet", "seed": seed, "steps": steps, "batch_size": batch_size,
             "edge_weight": edge_weight, "holdout_mean_abs_error": round(error, 5),
             "final_loss": losses[-1] if losses else None}
    path = publish(ctx, name, lambda d: depth_pack.save_depth_net(net, d), facts)
    plot = plot_losses(losses, ctx.output_path(f"train/{name}_loss.png"), f"TrainDepthNet: held-out error {error:.4f}")
    ctx.wrote(plot)
    return DepthNetResult(path, str(plot), round(error, 5))


# ---- the world CLIP (contrastive pictures ↔ captions) -------------------------------------------


def caption_variants(scene: "world.Scene") -> list[str]:
    """The texts a picture is trained against. A one-object picture also gets its shorter
    captions ("a red circle", "a large red circle", "a red circle at the top left"), so
    zero-shot labels and prompts without a size or position are things CLIP has seen."""
    if len(scene.shapes) != 1:
        return [world.caption(scene)]
    shape = scene.shapes[0]
    return [shape.describe(with_size=size, with_position=place) for size in (True, False) for place in (True, False)]


class WorldPictures:
    """A fixed set of world pictures rendered once (uint8, kept in the node's work folder,
    so a resumed run does not render them again) with their caption variants."""

    def __init__(self, images: "torch.Tensor", captions: list[list[str]]) -> None:
        self.images, self.captions = images, captions

    @classmethod
    def build(cls, ctx: RunContext, seed: int, count: int, chunk: int = 256) -> "WorldPictures":
        path = ctx.work_dir / f"world_pictures_{count}.pt"
        if path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return cls(saved["images"], [list(c) for c in saved["captions"]])
        images, captions = [], []
        for index in range(-(-count // chunk)):
            ctx.check_cancelled()
            ctx.progress(index * chunk, count, None, f"drawing world pictures {index * chunk}/{count}")
            scenes = world.batch_scenes(seed, index, chunk)
            batch = world.render_batch(scenes, minisd.IMAGE_SIZE)
            images.append((batch["image"] * 255).round().to(torch.uint8))
            captions += [caption_variants(s) for s in scenes]
        pictures = cls(torch.cat(images)[:count], captions[:count])
        with atomic_path(path) as tmp:
            torch.save({"images": pictures.images, "captions": pictures.captions}, tmp)
        return pictures

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, size: int, generator, device) -> tuple["torch.Tensor", list[str]]:
        index = torch.randint(0, len(self), (size,), generator=generator).tolist()
        choice = torch.randint(0, 1 << 30, (size,), generator=generator).tolist()
        texts = [self.captions[i][c % len(self.captions[i])] for i, c in zip(index, choice)]
        return (self.images[index].float() / 255).to(device), texts


def hard_negative(text: str, generator) -> str:
    """The caption with one shape word or one position swapped for another ("a red circle at
    the top" → "a red star at the top"): a text that is *almost* right. Without such
    negatives a contrastive model gets most pairs right from colour alone and is slow to
    look at shape and position (the "bag of words" weakness of CLIP, which NegCLIP trains
    away in the same way)."""
    import re

    places = list(re.finditer(r"at the (" + "|".join(sorted(world.POSITIONS, key=len, reverse=True)) + r")\b", text))
    shapes = list(re.finditer(r"\b(" + "|".join(world.SHAPES) + r")\b", text))
    pick = int(torch.randint(0, 1 << 30, (1,), generator=generator))
    if places and (not shapes or pick % 2):
        match, pool = places[pick // 2 % len(places)], world.POSITIONS
        group = 1
    elif shapes:
        match, pool = shapes[pick // 2 % len(shapes)], world.SHAPES
        group = 1
    else:
        return text
    others = [w for w in pool if w != match.group(group)]
    other = others[pick // 7 % len(others)]
    return text[: match.start(group)] + other + text[match.end(group) :]


def contrastive_loss(clip, tokenizer, images: "torch.Tensor", texts: list[str], negatives: list[str] = ()) -> "torch.Tensor":
    """CLIP's loss: the batch's pictures × texts cosine matrix, times the learned temperature,
    read as a classification both ways (each picture → its text, each text → its picture).
    Texts that occur twice in a batch ("a red circle") count as right answers for both
    pictures; `negatives` are extra wrong texts every picture must also rank below its own."""
    from .clip_space import CLIP_MEAN, CLIP_STD, normalize_pixels

    device = images.device
    known = set(texts)  # a "negative" that is some other picture's caption is not a negative
    all_texts = list(texts) + [t for t in negatives if t not in known]
    ids = minisd.token_ids(tokenizer, all_texts).to(device)
    image_vectors = F.normalize(clip.encode_image(normalize_pixels(images, CLIP_MEAN, CLIP_STD)), dim=-1)
    text_vectors = F.normalize(clip.encode_text(ids), dim=-1)
    logits = clip.logit_scale.exp().clamp(max=100.0) * image_vectors @ text_vectors.T
    key = {text: i for i, text in enumerate(dict.fromkeys(texts))}
    text_index = torch.tensor([key[t] for t in texts], device=device)
    same = (text_index[:, None] == text_index[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    n = len(texts)
    image_to_text = F.cross_entropy(logits, F.pad(targets, (0, logits.shape[1] - n)))
    text_to_image = F.cross_entropy(logits[:, :n].T, targets)
    return (image_to_text + text_to_image) / 2


def colour_shape_labels() -> list[str]:
    """Every colour × shape of the world as a caption: "a red circle", "an orange star", ..."""
    return [world.Shape(kind, color, "medium", 0.5, 0.5, 0.1, 0.5).describe(False, False) for color in world.COLORS for kind in world.SHAPES]


def one_object_pictures(seed: int, count: int) -> tuple["torch.Tensor", list[str]]:
    """`count` held-out one-object pictures spread evenly over colour × shape (sizes,
    positions and backgrounds random), with their colour × shape label."""
    import numpy as np

    labels = colour_shape_labels()
    pairs = [(color, kind) for color in world.COLORS for kind in world.SHAPES]
    rng = np.random.default_rng([HOLDOUT + int(seed), count])
    scenes = [world.sample_scene(rng, 1, colors=[pairs[i % len(pairs)][0]], kinds=[pairs[i % len(pairs)][1]]) for i in range(count)]
    return world.render_batch(scenes, minisd.IMAGE_SIZE)["image"], [labels[i % len(labels)] for i in range(count)]


def zero_shot_accuracy(clip_handle, images: "torch.Tensor", truth: list[str]) -> float:
    """Share of pictures whose best colour × shape label (ZeroShotClassify) is the true one."""
    from .clip_space import zero_shot_classify

    best = zero_shot_classify(clip_handle, images, colour_shape_labels(), "{}").best
    return sum(b == t for b, t in zip(best, truth)) / len(truth)


class WorldClipResult(NamedTuple):
    clip_path: str
    loss_plot: str
    zero_shot_accuracy: float


@node(category="train", name="TrainWorldClip", persist=True)
def train_world_clip(
    ctx: RunContext,
    seed: Annotated[Seed, Doc("model init, the pictures, the batches")] = 0,
    steps: Annotated[int, Range(1, 1_000_000)] = 1500,
    batch_size: Annotated[int, Range(2, 2048), Doc("pictures per step: each is contrasted with every other text in the batch")] = 128,
    learning_rate: Annotated[float, Range(1e-6, 1e-1)] = 1e-3,
    dataset_size: Annotated[int, Range(1, 1_000_000), Doc("distinct world pictures, drawn once before training starts")] = 12288,
    checkpoint_every: Annotated[int, Range(1, 100_000)] = 100,
    name: Annotated[str, Doc("open_clip folder written under the first model root")] = "minisd-clip",
) -> WorldClipResult:
    """Train a tiny CLIP on world pictures and their captions (contrastive loss): an image
    tower and a text tower learn to put a picture and its caption at the same point of one
    64-dimensional space. Reports zero-shot colour × shape accuracy on held-out pictures.
    Writes an open_clip folder (config + safetensors + tokenizer) that OpenClipLoader
    reads, and whose text tower TrainDenoiser uses as MiniSD's text encoder."""
    from .clip_space import OpenClipHandle, save_open_clip_folder, CLIP_MEAN, CLIP_STD

    import open_clip

    _check_name(name)
    device = pick_device()
    tokenizer = minisd.build_tokenizer()
    config = minisd.world_clip_config(tokenizer)
    clip = _seeded_init(seed, lambda: open_clip.CLIP(**config)).to(device).train()
    optimizer = adamw(clip.parameters(), learning_rate, weight_decay=0.1)
    pictures = WorldPictures.build(ctx, seed, dataset_size)

    def step_fn(step: int) -> float:
        generator = step_generator(seed, step)
        images, texts = pictures.batch(batch_size, generator, device)
        loss = contrastive_loss(clip, tokenizer, images, texts, [hard_negative(t, generator) for t in texts])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
        optimizer.step()
        return float(loss.detach())

    losses = run_training(
        ctx, steps=steps, checkpoint_every=checkpoint_every, modules={"clip": clip}, optimizer=optimizer,
        learning_rate=learning_rate, warmup=min(200, steps // 10 + 1), step_fn=step_fn, label="CLIP ",
    )
    clip.eval()
    images, truth = one_object_pictures(seed, 240)
    handle = OpenClipHandle(clip, lambda texts: minisd.token_ids(tokenizer, texts), name, "training", (64, 64), CLIP_MEAN, CLIP_STD)
    accuracy = zero_shot_accuracy(handle, images, truth)
    facts = {"trainer": "TrainWorldClip", "seed": seed, "steps": steps, "batch_size": batch_size,
             "zero_shot_accuracy": round(accuracy, 4), "final_loss": losses[-1] if losses else None}

    def fill(folder: Path) -> None:
        save_open_clip_folder(clip, {"model_cfg": config, "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD), "size": minisd.IMAGE_SIZE}}, folder)
        tokenizer.save_pretrained(str(folder / config["text_cfg"]["hf_tokenizer_name"]))

    path = publish(ctx, name, fill, facts)
    plot = plot_losses(losses, ctx.output_path(f"train/{name}_loss.png"), f"TrainWorldClip: zero-shot {accuracy:.1%}")
    ctx.wrote(plot)
    return WorldClipResult(path, str(plot), round(accuracy, 4))
