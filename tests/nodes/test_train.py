"""MiniSD's architecture and its training nodes: real networks, real (tiny) training runs.

Kept fast: a few steps on batches of a handful of world pictures."""

from __future__ import annotations

import json

import pytest
import torch

from nodegraph.context import CancelToken, RunContext
from nodegraph.errors import Cancelled
from nodegraph.nodes import minisd as M
from nodegraph.nodes import train as T
from nodegraph.nodes import world as W


def make_ctx(roots, signature="sig", on_progress=None, cancel=None):
    ctx = RunContext("1", "Train", roots, cancel or CancelToken(), on_progress)
    ctx.signature = signature
    return ctx


# ---- architecture ---------------------------------------------------------------------------


def test_tokenizer_makes_each_world_word_one_token():
    tok = M.build_tokenizer()
    for word in [*W.vocabulary(), ","]:
        ids = tok(word).input_ids
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert len(ids) == 3, (word, tok.convert_ids_to_tokens(ids))
    caption = "a black square at the bottom left, a blue square at the bottom right and a white star at the top right"
    assert len(tok(caption).input_ids) == len(W.caption_words(caption)) + 2 <= M.MAX_TOKENS
    # unknown words still encode (byte fallback), never to the EOS id
    assert tok.eos_token_id not in tok("a purple cat").input_ids[1:-1]


def test_pipeline_folder_loads_offline_and_makes_a_64px_image(tmp_path):
    from diffusers import StableDiffusionPipeline

    folder = M.fresh_pipeline_folder(tmp_path / "minisd", seed=0)
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "model_index.json"):
        assert (folder / part).exists()
    assert M.folder_bytes(folder) <= 15 * 2**20
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    assert pipe.vae_scale_factor == 8
    te = pipe.text_encoder.config
    assert te.hidden_size == pipe.unet.config.cross_attention_dim
    assert te.max_position_embeddings >= pipe.tokenizer.model_max_length
    assert te.eos_token_id == pipe.tokenizer.eos_token_id
    out = pipe("a red circle at the top left", num_inference_steps=3, height=64, width=64,
               generator=torch.Generator().manual_seed(0), output_type="np")
    image = out.images[0]
    assert image.shape == (64, 64, 3) and (image >= 0).all() and (image <= 1).all()


# ---- training --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_vae(tmp_path_factory):
    """A VAE trained for a few steps (shared by the denoiser tests)."""
    from nodegraph.context import Roots

    base = tmp_path_factory.mktemp("vae")
    roots = Roots(inputs=[], outputs=base / "out", models=[base / "models"], cache=base / "cache")
    events = []
    ctx = make_ctx(roots, "vae-sig", lambda i, n, p, t: events.append((i, n, p, t)))
    images = T.holdout_images(0, 8, torch.device("cpu"))
    vae0 = T._seeded_init(1, M.build_vae)
    before = T.psnr(T.reconstruct(vae0.eval(), images), images)
    result = T.train_autoencoder(ctx, seed=1, steps=8, batch_size=4, learning_rate=3e-3, checkpoint_every=4, name="vae")
    return roots, result, events, before


def test_autoencoder_steps_improve_reconstruction_and_write_a_vae_folder(trained_vae):
    from diffusers import AutoencoderKL

    roots, result, events, before = trained_vae
    assert result.psnr > before + 1.0, (before, result.psnr)
    assert result.vae_path == "vae"
    folder = roots.models[0] / "vae"
    vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    assert vae.config.scaling_factor != 1.0 and json.loads((folder / T.MARKER).read_text())["steps"] == 8
    z = vae.encode(torch.rand(1, 3, 64, 64)).latent_dist.mode()
    assert z.shape == (1, 4, 8, 8)
    plot = roots.outputs / "train" / "vae_loss.png"
    assert str(plot) == result.loss_plot and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [e[0] for e in events if e[0] > 0][-1] == 8 and "loss" in events[-1][3]
    assert any(e[2] is not None for e in events)  # reconstructions as previews at checkpoints


def _denoiser_eval_loss(vae, unet, text_encoder, tokenizer, seed=3):
    """Denoising loss on a fixed batch with fixed noise and timesteps."""
    batch = T.world_batch(99, 0, 8, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    latents = T.encode_latents(vae, batch["image"], generator)
    with torch.no_grad():
        return float(T.denoiser_loss(unet, text_encoder, tokenizer, M.build_train_scheduler(),
                                     latents, batch["caption"], generator, 0.0))


def test_denoiser_steps_reduce_loss_and_write_a_loadable_pipeline(trained_vae):
    roots, vae_result, _, _ = trained_vae
    vae = T.load_vae_folder(roots.models[0] / vae_result.vae_path, torch.device("cpu"))
    tok = M.build_tokenizer()
    te0, unet0 = T._seeded_init(2, lambda: (M.build_text_encoder(tok), M.build_unet()))
    before = _denoiser_eval_loss(vae, unet0.eval(), te0.eval(), tok)
    ctx = make_ctx(roots, "den-1")
    result = T.train_denoiser(ctx, vae=vae_result.vae_path, seed=2, steps=8, batch_size=8, learning_rate=2e-3, dataset_size=64,
                              checkpoint_every=4, name="den")
    assert result.model_path == "den" and (roots.outputs / "train" / "den_loss.png").exists()
    pipe = M.load_pipeline(roots.models[0] / "den")
    after = _denoiser_eval_loss(pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer)
    assert after < before, (before, after)
    image = pipe("a red circle at the top left", num_inference_steps=3, height=64, width=64,
                 generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert image.shape == (64, 64, 3)


def test_cancelled_training_resumes_from_checkpoint_with_identical_result(tmp_path):
    from nodegraph.context import Roots

    def roots_in(name):
        base = tmp_path / name
        return Roots(inputs=[], outputs=base / "out", models=[base / "models"], cache=base / "cache")

    # object weights and a decaying rate too: what MiniSD's VAE is trained with
    kwargs = dict(seed=5, steps=4, batch_size=1, learning_rate=2e-3, object_weight=8.0, lr_decay=0.5, checkpoint_every=2, name="v")
    straight_roots = roots_in("straight")
    straight = T.train_autoencoder(make_ctx(straight_roots, "s"), **kwargs)

    roots = roots_in("resumed")
    cancel = CancelToken()
    seen = []

    def on_progress(step, total, preview, text):
        seen.append(step)
        if step == 3:
            cancel.cancel()

    with pytest.raises(Cancelled):
        T.train_autoencoder(make_ctx(roots, "r", on_progress, cancel), **kwargs)
    state = T.Checkpoint(roots.cache / "work" / "r").load()
    assert state["step"] == 3 and len(state["losses"]) == 3  # the cancel saved every finished step
    assert not (roots.models[0] / "v").exists()  # nothing half-published

    resumed_steps = []
    resumed = T.train_autoencoder(make_ctx(roots, "r", lambda s, n, p, t: resumed_steps.append(s)), **kwargs)
    assert resumed_steps[0] == 3 and 1 not in resumed_steps  # continued, did not start over
    assert resumed.psnr == straight.psnr
    from safetensors.torch import load_file

    wa = load_file(straight_roots.models[0] / "v" / "diffusion_pytorch_model.safetensors")
    wb = load_file(roots.models[0] / "v" / "diffusion_pytorch_model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_publish_refuses_to_replace_a_folder_it_did_not_write(roots):
    (roots.models[0] / "mine").mkdir()
    ctx = make_ctx(roots)
    with pytest.raises(Exception, match="not written by a trainer"):
        T.publish(ctx, "mine", lambda d: None, {})
    with pytest.raises(Exception, match="plain folder name"):
        T.publish(ctx, "../escape", lambda d: None, {})


# ---- ControlNet and depth net -------------------------------------------------------------------


def _roots_in(base):
    from nodegraph.context import Roots

    roots = Roots(inputs=[], outputs=base / "out", models=[base / "models"], cache=base / "cache")
    roots.models[0].mkdir(parents=True, exist_ok=True)
    return roots


@pytest.fixture(scope="module")
def base_pipeline(tmp_path_factory):
    """A MiniSD pipeline folder with seeded random weights: the frozen base a ControlNet is
    trained against (its quality does not matter to the wiring checked here)."""
    folder = tmp_path_factory.mktemp("minisd-base") / "base"
    return M.fresh_pipeline_folder(folder, seed=0)


@pytest.fixture(scope="module")
def trained_controlnet(tmp_path_factory, base_pipeline):
    import shutil

    roots = _roots_in(tmp_path_factory.mktemp("cn"))
    shutil.copytree(base_pipeline, roots.models[0] / "base")
    events = []
    ctx = make_ctx(roots, "cn-sig", lambda i, n, p, t: events.append((i, n, p, t)))
    result = T.train_controlnet(ctx, model="base", seed=3, steps=4, batch_size=4, learning_rate=2e-3,
                                checkpoint_every=2, name="cn")
    return roots, result, events


def test_controlnet_steps_reduce_loss_and_write_a_controlnet_folder(trained_controlnet):
    from diffusers import ControlNetModel

    roots, result, events = trained_controlnet
    assert result.controlnet_path == "cn"
    folder = roots.models[0] / "cn"
    facts = json.loads((folder / T.MARKER).read_text())
    assert facts["downscale"] == 8 and facts["hint"] == "canny"
    # held-out denoising loss (fixed noise and timesteps): lower with the trained ControlNet
    assert facts["holdout_loss_with_controlnet"] < facts["holdout_loss_without_controlnet"], facts
    parts = T.load_frozen_pipeline_parts(roots.models[0] / "base", torch.device("cpu"))
    # a ControlNet fresh from from_unet has zero output layers: exactly no effect at step 0
    fresh = T._seeded_init(3, lambda: ControlNetModel.from_unet(parts["unet"], conditioning_embedding_out_channels=(16, 32, 64, 64)))
    off, on = T.controlnet_holdout_losses(parts, fresh.eval(), 3, 8, (0.1, 0.2))
    assert on == pytest.approx(off, abs=1e-6)
    trained = ControlNetModel.from_pretrained(str(folder), local_files_only=True).eval()
    off, on = T.controlnet_holdout_losses(parts, trained, 3, 8, (0.1, 0.2))
    assert on < off, (off, on)
    assert (roots.outputs / "train" / "cn_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert [e[0] for e in events if e[0] > 0][-1] == 4 and "loss" in events[-1][3]


def test_trained_controlnet_loads_through_loadcontrolnet_and_steers_the_sample(trained_controlnet):
    from nodegraph.nodes.controlnet import canny_edges, controlnet_apply
    from nodegraph.nodes.latent import empty_latent_image
    from nodegraph.nodes.models import checkpoint_loader, load_controlnet
    from nodegraph.nodes.sampling import ksampler
    from nodegraph.nodes.text import clip_text_encode

    roots, _, _ = trained_controlnet
    ctx = make_ctx(roots, "sample")
    model, clip, vae = checkpoint_loader("base", ctx)
    net = load_controlnet("cn", ctx)
    assert net.downscale == vae.scale_factor == 8
    hint = canny_edges(T.world_batch(7, 0, 1, torch.device("cpu"))["image"])
    # the loader must use MiniSD's own word tokenizer (transformers 5 saves only tokenizer.json)
    assert clip.tokenizer.model_max_length == M.build_tokenizer().model_max_length
    assert clip.tokenizer("a red circle").input_ids == M.build_tokenizer()("a red circle").input_ids
    pos = clip_text_encode(clip, "a red circle at the top left")
    neg = clip_text_encode(clip, "")
    latent = empty_latent_image(64, 64, 1, vae=vae)
    plain = ksampler(model, pos, neg, latent, ctx, seed=4, steps=3, cfg=3.0)["samples"]
    cpos, cneg = controlnet_apply(pos, neg, net, hint, strength=1.0, vae=vae)
    steered = ksampler(model, cpos, cneg, latent, ctx, seed=4, steps=3, cfg=3.0)["samples"]
    assert steered.shape == plain.shape == (1, 4, 8, 8)
    assert (steered - plain).abs().max() > 1e-3


def test_controlnet_refuses_a_folder_that_is_not_a_pipeline(roots):
    (roots.models[0] / "not-a-pipeline").mkdir()
    with pytest.raises(Exception, match="not a diffusers pipeline folder"):
        T.train_controlnet(make_ctx(roots), model="not-a-pipeline", steps=1, batch_size=1)


@pytest.fixture(scope="module")
def trained_depth_net(tmp_path_factory):
    roots = _roots_in(tmp_path_factory.mktemp("depth"))
    from nodegraph.nodes import depth as dp

    before = T.depth_error(T._seeded_init(4, dp.build_depth_net).eval(), 4, 32, torch.device("cpu"))
    events = []
    ctx = make_ctx(roots, "depth-sig", lambda i, n, p, t: events.append((i, n, p, t)))
    result = T.train_depth_net(ctx, seed=4, steps=16, batch_size=8, learning_rate=1e-2, checkpoint_every=8,
                               name="minisd-depth")
    return roots, result, events, before


def test_depth_net_steps_reduce_error_and_write_a_folder(trained_depth_net):
    from nodegraph.nodes import depth as dp

    roots, result, events, before = trained_depth_net
    assert result.depth_net_path == "minisd-depth"
    assert result.holdout_error < before - 0.02, (before, result.holdout_error)
    folder = roots.models[0] / "minisd-depth"
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", T.MARKER}
    net = dp.load_depth_net(folder, torch.device("cpu"))
    assert T.depth_error(net, 4, 32, torch.device("cpu")) == pytest.approx(result.holdout_error, abs=1e-4)
    assert (roots.outputs / "train" / "minisd-depth_loss.png").exists()
    assert any(e[2] is not None for e in events)  # pictures and predicted depth as previews


def test_depth_net_loads_through_estimatedepth_minisd_backend(trained_depth_net):
    from nodegraph.nodes import depth as dp

    roots, _, _, _ = trained_depth_net
    ctx = make_ctx(roots, "estimate")
    batch = T.world_batch(11, 0, 3, torch.device("cpu"))
    image = torch.nn.functional.interpolate(batch["image"], size=(40, 56), mode="bilinear", align_corners=False)
    depth = dp.estimate_depth(ctx, image, backend="minisd")  # default model → models/minisd-depth
    assert depth.shape == (3, 1, 40, 56) and depth.dtype == torch.float32
    assert depth.min() >= 0 and depth.max() <= 1
    for index in range(3):  # per_image: each picture spans [0, 1]
        assert depth[index].max() == pytest.approx(1.0) and depth[index].min() == pytest.approx(0.0)
    raw = dp.estimate_depth(ctx, batch["image"], backend="minisd", model="minisd-depth", normalize="none")
    assert raw.shape == (3, 1, 64, 64) and raw.min() >= 0 and raw.max() <= 1
    # at 64 px, exactly the net's output
    net = dp.load_depth_net(roots.models[0] / "minisd-depth", torch.device("cpu"))
    with torch.no_grad():
        assert torch.allclose(raw, net(batch["image"]), atol=1e-6)


def _cancel_and_resume(tmp_path, train, kwargs, weights_file, cancel_at=2, prepare=None):
    """Run `train` straight through, and again cancelled after step `cancel_at` then resumed:
    both must write identical weights."""
    straight_roots = _roots_in(tmp_path / "straight")
    roots = _roots_in(tmp_path / "resumed")
    if prepare is not None:
        prepare(straight_roots)
        prepare(roots)
    train(make_ctx(straight_roots, "s"), **kwargs)
    cancel = CancelToken()

    def on_progress(step, total, preview, text):
        if step == cancel_at:
            cancel.cancel()

    with pytest.raises(Cancelled):
        train(make_ctx(roots, "r", on_progress, cancel), **kwargs)
    assert T.Checkpoint(roots.cache / "work" / "r").load()["step"] == cancel_at
    assert not (roots.models[0] / kwargs["name"]).exists()
    resumed_steps = []
    train(make_ctx(roots, "r", lambda s, n, p, t: resumed_steps.append(s)), **kwargs)
    assert resumed_steps[0] == cancel_at and 1 not in resumed_steps
    from safetensors.torch import load_file

    wa = load_file(straight_roots.models[0] / kwargs["name"] / weights_file)
    wb = load_file(roots.models[0] / kwargs["name"] / weights_file)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_controlnet_resumes_after_cancel_with_identical_weights(tmp_path, base_pipeline):
    import shutil

    _cancel_and_resume(
        tmp_path, T.train_controlnet,
        dict(model="base", seed=6, steps=3, batch_size=2, learning_rate=2e-3, checkpoint_every=3, name="c"),
        "diffusion_pytorch_model.safetensors",
        prepare=lambda roots: shutil.copytree(base_pipeline, roots.models[0] / "base"),
    )


def test_denoiser_resumes_after_cancel_with_identical_weights(tmp_path, trained_vae):
    """MiniSD's UNet is trained for hours, so it is the trainer most often stopped and resumed."""
    import shutil

    vae_roots, vae_result, _, _ = trained_vae
    _cancel_and_resume(
        tmp_path, T.train_denoiser,
        dict(vae="vae", seed=2, steps=3, batch_size=2, learning_rate=2e-3, dataset_size=16, lr_decay=0.5,
             checkpoint_every=3, name="den"),
        "unet/diffusion_pytorch_model.safetensors",
        prepare=lambda roots: shutil.copytree(vae_roots.models[0] / vae_result.vae_path, roots.models[0] / "vae"),
    )


def test_depth_net_resumes_after_cancel_with_identical_weights(tmp_path):
    _cancel_and_resume(
        tmp_path, T.train_depth_net,
        dict(seed=6, steps=3, batch_size=2, learning_rate=3e-3, checkpoint_every=3, name="d"),
        "model.safetensors", cancel_at=2,
    )


# ---- decoder tuning and the learning-rate schedule -----------------------------------------------


def test_tuning_the_decoder_keeps_the_latent_space_and_improves_reconstruction(trained_vae, tmp_path):
    import shutil

    from safetensors.torch import load_file

    base_roots, base_result, _, _ = trained_vae
    roots = _roots_in(tmp_path)
    shutil.copytree(base_roots.models[0] / base_result.vae_path, roots.models[0] / "base-vae")
    held_out = T.world_batch(T.HOLDOUT + 7, 0, 16, torch.device("cpu"))

    def objective(vae):  # what the tuner minimises, on pictures it never sees
        x = held_out["image"] * 2 - 1
        with torch.no_grad():
            recon = vae.decode(vae.encode(x).latent_dist.mode()).sample
            return float(T.reconstruction_loss(recon, x, 0.5, T.object_weights(held_out["masks"], 8.0)))

    before = objective(T.load_vae_folder(roots.models[0] / "base-vae", torch.device("cpu")))
    result = T.tune_vae_decoder(make_ctx(roots, "tune"), vae="base-vae", seed=1, steps=12, batch_size=4,
                                learning_rate=2e-3, checkpoint_every=6, name="tuned")
    after = objective(T.load_vae_folder(roots.models[0] / "tuned", torch.device("cpu")))
    assert result.vae_path == "tuned" and after < before, (before, after)
    assert 0.0 <= result.shapes_kept <= 1.0
    old = load_file(roots.models[0] / "base-vae" / "diffusion_pytorch_model.safetensors")
    new = load_file(roots.models[0] / "tuned" / "diffusion_pytorch_model.safetensors")
    frozen = [k for k in old if k.startswith(("encoder.", "quant_conv."))]
    tuned = [k for k in old if k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen and tuned and len(frozen) + len(tuned) == len(old)
    assert all(torch.equal(old[k], new[k]) for k in frozen)  # same latents: a UNet trained on them still fits
    assert not all(torch.equal(old[k], new[k]) for k in tuned)
    facts = json.loads((roots.models[0] / "tuned" / T.MARKER).read_text())
    assert facts["trainer"] == "TuneVaeDecoder" and facts["base"] == "base-vae" and facts["shapes_kept"] == round(result.shapes_kept, 4)
    assert (roots.outputs / "train" / "tuned_loss.png").exists()


def test_decoder_tuning_resumes_after_cancel_with_identical_weights(tmp_path, trained_vae):
    import shutil

    base_roots, base_result, _, _ = trained_vae
    _cancel_and_resume(
        tmp_path, T.tune_vae_decoder,
        dict(vae="base-vae", seed=2, steps=3, batch_size=2, learning_rate=2e-3, checkpoint_every=3, name="t"),
        "diffusion_pytorch_model.safetensors",
        prepare=lambda roots: shutil.copytree(base_roots.models[0] / base_result.vae_path, roots.models[0] / "base-vae"),
    )


def test_object_weights_cover_each_object_and_a_ring_around_it_smaller_objects_more():
    masks = torch.zeros(1, 3, 64, 64)
    masks[0, 0, 10:14, 10:14] = 1  # 16 px
    masks[0, 1, 40:56, 40:56] = 1  # 256 px
    weights = T.object_weights(masks, 8.0)
    assert weights.shape == (1, 1, 64, 64)
    small, large = float(weights[0, 0, 12, 12]), float(weights[0, 0, 48, 48])
    assert small == weights[0, 0, 8, 8] and large == weights[0, 0, 38, 38]  # a 2 px ring around each
    assert small > large > 1 and weights[0, 0, 7, 7] == 1 and weights[0, 0, 30, 30] == 1  # background
    assert small == pytest.approx(1 + 8.0 * 4.0)  # the size ratio is capped


def test_learning_rate_warms_up_holds_then_eases_down_to_a_tenth():
    base, steps = 1e-3, 100
    rates = [T._lr_at(s, base, 10, steps, 0.5) for s in range(steps)]
    assert rates[0] == pytest.approx(base / 10) and rates[9] == pytest.approx(base)
    assert all(r == pytest.approx(base) for r in rates[10:50])
    assert all(a >= b for a, b in zip(rates[50:], rates[51:])) and rates[-1] == pytest.approx(base * 0.1, rel=0.01)
    # a longer run repeats a shorter one's steps before its own decay begins (resuming stays exact)
    assert [T._lr_at(s, base, 10, 200, 0.5) for s in range(100)] == [T._lr_at(s, base, 10, 100, 0.0) for s in range(100)]
    assert [T._lr_at(s, base, 10, steps) for s in range(steps)] == [min(1.0, (s + 1) / 10) * base for s in range(steps)]


def test_every_training_graph_validates(roots):
    """The graphs that reproduce the shipped models name real trainers, inputs and links."""
    from pathlib import Path

    from nodegraph.graph import load_graph
    from nodegraph.registry import build_registry
    from nodegraph.validate import validate

    registry = build_registry()
    folder = Path(__file__).resolve().parents[2] / "graphs" / "train"
    graphs = sorted(folder.glob("*.json"))
    assert len(graphs) >= 6
    for path in graphs:
        problems = validate(load_graph(path), registry, roots)
        assert problems == [], (path.name, problems)
